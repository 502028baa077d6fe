"""What the tests of infra/ share: its paths, the checkov virtualenv, and the facts of the Bicep files
(tests/infra/bicep_facts.py, run in that virtualenv, on main.bicep and every module; the facts are merged, so a test
asks for a variable or a resource wherever it is, and follows a module's parameter back to what main.bicep passes).

Tools missing (checkov venv, shellcheck, node's Kusto parser) fail the test with "run make test"; nothing is skipped
silently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN_BICEP = INFRA / "main.bicep"
PARAMETERS_JSON = INFRA / "main.parameters.json"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.json.example"
CHECKOV_VENV = ROOT / ".venv-checkov"
SCRIPTS = sorted(INFRA.glob("*.sh"))
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
FACTS_SCRIPT = Path(__file__).resolve().parent / "bicep_facts.py"
KQL_CHECK_SCRIPT = Path(__file__).resolve().parent / "kql_check.js"
KUSTO_LANGUAGE = ROOT / "node_modules" / "@kusto" / "language-service-next"

MAKE_TEST = "run `make test`, which installs it"


def need_checkov_venv() -> Path:
    python = CHECKOV_VENV / "bin" / "python"
    if not (CHECKOV_VENV / "bin" / "checkov").exists() or not python.exists():
        pytest.fail(f"{CHECKOV_VENV} (checkov, pycep-parser, tree-sitter-bicep) is missing: {MAKE_TEST} "
                    "from infra/requirements-checks.txt")
    return python


def need_kusto_language() -> str:
    node = shutil.which("node")
    if node is None or not (KUSTO_LANGUAGE / "package.json").exists():
        pytest.fail(f"node or {KUSTO_LANGUAGE.relative_to(ROOT)} (Microsoft's Kusto parser) is missing: {MAKE_TEST} "
                    "from package-lock.json")
    return node


def kql_diagnostics(queries: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """name -> the diagnostics of Microsoft's Kusto parser and analyzer for that query, run against the AppTraces
    table of a Log Analytics workspace (tests/infra/kql_check.js)."""
    node = need_kusto_language()
    proc = subprocess.run([node, str(KQL_CHECK_SCRIPT)], input=json.dumps(queries), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"the KQL check failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


# --- Facts from the Bicep, extracted in the checkov venv -------------------------------------------------------

@cache
def bicep_facts() -> dict[str, Any]:
    python = need_checkov_venv()
    assert BICEP_FILES, "no .bicep files under infra/"
    proc = subprocess.run([str(python), str(FACTS_SCRIPT), *map(str, BICEP_FILES)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"Bicep fact extraction failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


@cache
def parameter_file_values() -> dict[str, Any]:
    return {name: entry["value"] for name, entry in json.loads(PARAMETERS_JSON.read_text())["parameters"].items()}


def bicep_text() -> str:
    """Every .bicep file's text, for what is asserted on the text."""
    return "\n".join(path.read_text() for path in BICEP_FILES)


def var_file(name: str) -> str:
    """The file (relative to infra/) that declares a variable."""
    facts = bicep_facts()
    assert not facts["conflicts"], f"variables declared in more than one file: {facts['conflicts']}"
    assert name in facts["var_files"], f"no .bicep file under infra/ declares `var {name}`"
    return facts["var_files"][name]


def app_settings() -> dict[str, dict[str, Any]]:
    settings = bicep_facts()["vars"].get("appSettings")
    assert settings and settings["kind"] == "object", "no .bicep file has a `var appSettings = { ... }` object"
    return settings["value"]


def module_calls(file: str) -> list[dict[str, Any]]:
    """The module declarations of a file (relative to infra/), with the params each passes."""
    calls = [m for m in bicep_facts()["modules"] if m["path"] == file]
    assert calls or file == "main.bicep", f"{file}: no .bicep file declares it as a module"
    return calls


def passed(call: dict[str, Any], param: str) -> dict[str, Any] | None:
    """The value a module declaration passes to the module's parameter, None when it passes none."""
    return call["body"]["value"].get("params", {}).get("value", {}).get(param)


def main_param(file: str, param: str) -> str | None:
    """The main.bicep parameter that a file's parameter receives unchanged (through any modules between), or None
    when it receives anything else. main.bicep's own parameters are themselves."""
    if file == "main.bicep":
        return param if param in bicep_facts()["params"] else None
    found = set()
    for call in module_calls(file):
        value = passed(call, param)
        found.add(main_param(call["file"], value["value"]) if value and value["kind"] == "identifier" else None)
    return found.pop() if len(found) == 1 else None


def _literal(node: dict[str, Any] | None) -> bool:
    return bool(node) and node["kind"] in ("string", "number", "bool")


def resolve(setting: str, node: dict[str, Any]) -> list[tuple[str, str]]:
    """The values a default deployment can give the setting, known offline, as (where, value) pairs: the literal,
    or the parameter's Bicep default and its value in main.parameters.json, followed from the module that sets it
    to what main.bicep passes. Empty when derived from a resource."""
    file = var_file("appSettings")
    if node["kind"] == "string":
        return [(file, node["value"])]
    if node["kind"] in ("number", "bool"):
        pytest.fail(f"app setting {setting} is a {node['kind']} ({node['text']}); app settings are strings: quote it")
    return _values(file, node)


def _values(file: str, node: dict[str, Any]) -> list[tuple[str, str]]:
    """What an expression of a file can be, known offline: a literal, or a parameter (or string() of one)."""
    if _literal(node):
        return [(file, node["value"])]
    # A parameter, or string() of a number parameter (app settings are strings).
    call = re.fullmatch(r"string\((\w+)\)", node["text"])
    name = node["value"] if node["kind"] == "identifier" else call.group(1) if call else None
    return param_values(file, name) if name else []


def param_values(file: str, name: str) -> list[tuple[str, str]]:
    """What a parameter of a file can be in a default deployment, as (where, value) pairs: its default, or the
    default and main.parameters.json value of the main.bicep parameter passed to it."""
    facts = bicep_facts()
    values: list[tuple[str, str]] = []
    if file == "main.bicep":
        if name in facts["params"]:
            default = facts["params"][name]["default"]
            if _literal(default):
                values.append((f"main.bicep param {name}", default["value"]))
            if name in parameter_file_values():
                values.append((f"main.parameters.json {name}", str(parameter_file_values()[name])))
        return values
    declared = facts["module_params"].get(file, {}).get(name)
    if declared is None:
        return values
    for call in module_calls(file):
        value = passed(call, name)
        if value is None and _literal(declared["default"]):
            values.append((f"{file} param {name}", declared["default"]["value"]))
        elif value is not None:
            values.extend(_values(call["file"], value))
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


def _declaration(file: str, symbol: str) -> dict[str, Any] | None:
    facts = bicep_facts()
    return next((r for r in [*facts["resources"], *facts["existing"]] if (r["file"], r["symbol"]) == (file, symbol)),
                None)


def _as_main_sees_it(file: str, node: dict[str, Any]) -> str:
    """A name expression of a file as main.bicep writes it: a module's parameter is replaced by what main passes."""
    if file == "main.bicep" or _literal(node):
        return node["text"]
    calls = module_calls(file)
    if node["kind"] == "identifier" and len(calls) == 1 and passed(calls[0], node["value"]) is not None:
        return _as_main_sees_it(calls[0]["file"], passed(calls[0], node["value"]))
    return f"{file}: {node['text']}"  # no match for anything in another file


def _key(file: str, symbol: str) -> tuple[Any, ...] | None:
    """What a resource is (type, name as main.bicep writes it, and its parent's), the same for a resource and an
    `existing` reference to it."""
    decl = _declaration(file, symbol)
    if decl is None or decl["body"]["kind"] != "object":
        return None
    props = decl["body"]["value"]
    parent = _key(file, props["parent"]["text"]) if "parent" in props else None
    return decl["type"].split("@")[0], _as_main_sees_it(file, props["name"]), parent


def name_in_main(resource: dict[str, Any]) -> str:
    """The name of a resource, as main.bicep writes it."""
    return _as_main_sees_it(resource["file"], resource["body"]["value"]["name"])


def denotes(file: str, symbol: str) -> dict[str, Any] | None:
    """The resource this deployment creates that a symbol of a file is (itself, or the one an `existing`
    reference names), or None."""
    key = _key(file, symbol)
    found = [r for r in bicep_facts()["resources"] if key is not None and _key(r["file"], r["symbol"]) == key]
    return found[0] if len(found) == 1 else None


def decorator(param: str, name: str) -> int | None:
    found = bicep_facts()["params"][param]["decorators"].get(name)
    return int(found[0]["value"]) if found else None
