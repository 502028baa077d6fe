"""What the tests of infra/ share: its paths, the checkov virtualenv, and the facts of the Bicep files
(tests/infra/bicep_facts.py, run in that virtualenv).

Tools missing (checkov venv, shellcheck) fail the test with "run make test"; nothing is skipped silently.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN_BICEP = INFRA / "main.bicep"
PARAMETERS_JSON = INFRA / "main.parameters.json"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.json.example"
CHECKOV_VENV = ROOT / ".venv-checkov"
SCRIPTS = sorted(INFRA.glob("*.sh"))
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
FACTS_SCRIPT = Path(__file__).resolve().parent / "bicep_facts.py"

MAKE_TEST = "run `make test`, which installs it"


def need_checkov_venv() -> Path:
    python = CHECKOV_VENV / "bin" / "python"
    if not (CHECKOV_VENV / "bin" / "checkov").exists() or not python.exists():
        pytest.fail(f"{CHECKOV_VENV} (checkov, pycep-parser, tree-sitter-bicep) is missing: {MAKE_TEST} "
                    "from infra/requirements-checks.txt")
    return python


# --- Facts from the Bicep, extracted in the checkov venv -------------------------------------------------------

@cache
def bicep_facts() -> dict[str, Any]:
    python = need_checkov_venv()
    assert BICEP_FILES, "no .bicep files under infra/"
    proc = subprocess.run([str(python), str(FACTS_SCRIPT), *map(str, BICEP_FILES)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"Bicep fact extraction failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def app_settings() -> dict[str, dict[str, Any]]:
    settings = bicep_facts()["vars"].get("appSettings")
    assert settings and settings["kind"] == "object", "main.bicep has no `var appSettings = { ... }` object"
    return settings["value"]


@cache
def parameter_file_values() -> dict[str, Any]:
    return {name: entry["value"] for name, entry in json.loads(PARAMETERS_JSON.read_text())["parameters"].items()}


def resolve(setting: str, node: dict[str, Any]) -> list[tuple[str, str]]:
    """The values a default deployment can give the setting, known offline, as (where, value) pairs: the literal,
    or the parameter's Bicep default and its value in main.parameters.json. Empty when derived from a resource."""
    if node["kind"] == "string":
        return [("main.bicep", node["value"])]
    if node["kind"] in ("number", "bool"):
        pytest.fail(f"app setting {setting} is a {node['kind']} ({node['text']}); app settings are strings: quote it")
    values: list[tuple[str, str]] = []
    params = bicep_facts()["params"]
    # A parameter, or string() of a number parameter (app settings are strings).
    call = re.fullmatch(r"string\((\w+)\)", node["text"])
    name = node["value"] if node["kind"] == "identifier" else call.group(1) if call else None
    if name in params:
        default = params[name]["default"]
        if default and default["kind"] in ("string", "number", "bool"):
            values.append((f"main.bicep param {name}", default["value"]))
        if name in parameter_file_values():
            values.append((f"main.parameters.json {name}", str(parameter_file_values()[name])))
    return values


def attr(alias: str) -> str:
    """The Settings attribute of an app setting name."""
    return next(k for k, f in Settings.model_fields.items() if f.alias == alias)


def same_as_default(setting: str, value: str) -> bool:
    field = Settings.model_fields[attr(setting)]
    parsed = Settings.model_validate({setting: value})
    return getattr(parsed, attr(setting)) == field.default


def resources(type_prefix: str) -> list[dict[str, Any]]:
    return [r for r in bicep_facts()["resources"] if r["type"].startswith(type_prefix + "@")]


def decorator(param: str, name: str) -> int | None:
    found = bicep_facts()["params"][param]["decorators"].get(name)
    return int(found[0]["value"]) if found else None
