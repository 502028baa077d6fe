"""Every .bicep file is one the offline tools can read and the Bicep compiler and linter would accept: it parses with
pycep-parser and tree-sitter-bicep, uses no registry module or extension, keeps Bicep's deploy-time-constant rules
(infra/bicep_lint.py, itself tested on small snippets), which no offline parser checks and the compiler enforces,
hardcodes no cloud's host names, and disables no linter rule but the one it must."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.facts import BICEP_FILES, INFRA, bicep_facts, denotes, need_checkov_venv


# --- Parsers ---------------------------------------------------------------------------------------------------

def test_every_bicep_file_parses() -> None:
    problems = []
    for path, entry in bicep_facts()["files"].items():
        if entry["pycep_error"]:
            problems.append(f"{path}: pycep-parser: {entry['pycep_error']}")
        if entry["tree_sitter_error"]:
            problems.append(f"{path}: tree-sitter-bicep: {entry['tree_sitter_error']}")
    assert not problems, "Bicep syntax errors (or constructs the offline parsers cannot read, e.g. `extension`, " \
                         "`import`, a string holding '//'):\n" + "\n".join(problems)


def test_no_registry_modules_or_extensions() -> None:
    # br:/ts: modules and Bicep extensions need network access at build time, and break the offline parsers.
    for path in BICEP_FILES:
        src = path.read_text()
        assert not re.search(r"^\s*(extension|import)\s", src, re.M), f"{path.name}: no extension/import"
        assert not re.search(r"module\s+\w+\s+'(br|ts)[:/]", src), f"{path.name}: no registry modules"


# --- Modules: what they reference ------------------------------------------------------------------------------

def test_every_existing_reference_is_a_resource_of_this_deployment() -> None:
    # A module reads or scopes to another module's resource through `existing`, named by a parameter main.bicep
    # passes: that name, as main.bicep writes it (and its parent's), must be the one the resource is deployed with.
    facts = bicep_facts()
    assert not facts["conflicts"], facts["conflicts"]
    dangling = [f"{e['file']}: {e['symbol']} ({e['type']}, name {e['body']['value']['name']['text']})"
                for e in facts["existing"] if denotes(e["file"], e["symbol"]) is None]
    assert not dangling, "existing references to nothing this deployment creates:\n" + "\n".join(dangling)
    for module in facts["modules"]:
        assert (INFRA / module["path"]).is_file(), f"{module['file']}: module {module['symbol']}: no {module['path']}"


# --- Values ARM needs before the deployment starts (what the Bicep compiler checks) ------------------------------

def _bicep_lint(*paths: Path) -> list[dict[str, Any]]:
    python = need_checkov_venv()
    proc = subprocess.run([str(python), str(INFRA / "bicep_lint.py"), "--json", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), f"infra/bicep_lint.py failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def test_bicep_values_needed_up_front_are_deploy_time_constants() -> None:
    found = _bicep_lint(*BICEP_FILES)
    assert not found, "values ARM needs before the deployment starts reach runtime state (the Bicep compiler " \
                      "refuses this):\n" + "\n".join(
        f"{f['file']}:{f['line']}: {f['code']} {f['where']}: `{f['expression']}` reaches "
        f"{' -> '.join(f['reaches'])}" for f in found)


_LINT_PRELUDE = """
param ids array = []
param prefix string = 'gl'
resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${prefix}'
  location: 'westeurope'
}
module m './m.bicep' = {
  name: 'm'
}
"""
# The module the prelude declares: its outputs are runtime values to the file that declares it.
_LINT_PRELUDE_MODULE = """
output x string = 'x'
output enabled bool = true
"""


def _case(tmp_path: Path, snippet: str) -> Path:
    (tmp_path / "m.bicep").write_text(_LINT_PRELUDE_MODULE)
    path = tmp_path / "case.bicep"
    path.write_text(_LINT_PRELUDE + snippet)
    return path

# Each must be flagged, with what it reaches.
_LINT_FLAGGED = {
    "loop over a var holding x.properties.y": ("""
var endpoints = st.properties.primaryEndpoints
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'app'
  properties: {
    siteConfig: {
      appSettings: [for e in items(endpoints): {
        name: e.key
        value: e.value
      }]
    }
  }
}
""", "BCP178", ["var endpoints", "st.properties"]),
    "a name from reference()": ("""
var other = reference('x', '2023-01-01')
resource c 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  name: '${other.name}-c'
}
""", "BCP120", ["var other", "reference()"]),
    "an if on a module output": ("""
resource r 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (m.outputs.enabled) {
  name: 'id'
}
""", "BCP177", ["m.outputs"]),
    "transitively through two vars": ("""
var a = st.properties.primaryEndpoints.blob
var b = '${a}x'
var c = [b]
resource ids2 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for n in c: {
  name: 'id-${prefix}'
}]
""", "BCP178", ["var c", "var b", "var a", "st.properties"]),
    "an existing resource named by list*()": ("""
resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: listKeys(st.id, '2023-05-01').keys[0].value
}
""", "BCP120", ["listKeys()"]),
    "a scope from a resource's properties": ("""
resource ra 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(st.id)
  scope: st.properties.primaryEndpoints
}
""", "BCP120", ["st.properties"]),
}

# Each must pass: runtime values are fine everywhere else.
_LINT_PASSING = {
    "loop over a param": """
resource ids2 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for id in ids: {
  name: id
  properties: {
    x: st.properties.primaryEndpoints.blob
  }
}]
""",
    "loop over a var built from params": """
var names = [prefix, '${prefix}-2', toLower(resourceGroup().name)]
resource ids2 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for (n, i) in names: if (!empty(prefix)) {
  name: '${n}-${i}-${st.name}'
  scope: st
}]
""",
    "runtime values in an appsettings child's properties": """
var settings = {
  BLOB: st.properties.primaryEndpoints.blob
  OUT: m.outputs.x
}
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'app'
  resource cfg 'config' = {
    name: 'appsettings'
    properties: union(settings, {})
  }
}
output urls array = [for id in ids: '${st.properties.primaryEndpoints.blob}${id}']
""",
}


@pytest.mark.parametrize("case", sorted(_LINT_FLAGGED))
def test_bicep_lint_flags_runtime_values(tmp_path: Path, case: str) -> None:
    snippet, code, reaches = _LINT_FLAGGED[case]
    found = _bicep_lint(_case(tmp_path, snippet))
    assert [(f["code"], f["reaches"]) for f in found] == [(code, reaches)], found


def test_bicep_lint_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    path = _case(tmp_path, "resource broken 'Microsoft.Storage/storageAccounts@2023-05-01' = [for x in : {\n")
    assert [f["code"] for f in _bicep_lint(path)] == ["syntax"]


@pytest.mark.parametrize("case", sorted(_LINT_PASSING))
def test_bicep_lint_passes_deploy_time_constants(tmp_path: Path, case: str) -> None:
    assert _bicep_lint(_case(tmp_path, _LINT_PASSING[case])) == []


# A module, linted on its own (its params are deploy-time constants there, as the compiler has it), and a module it
# declares in turn. Which of its params need constants: names (prefix, through a variable), loops (names),
# conditions (enabled), and innerName of inner.bicep (tag).
_MODULE = """
param names array
param prefix string
param enabled bool
param tag string
param blob string
var label = toLower(prefix)
resource ids 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for n in names: if (enabled) {
  name: '${label}-${n}'
  location: 'westeurope'
  tags: {
    blob: blob
  }
}]
module inner './inner.bicep' = {
  name: 'inner'
  params: {
    innerName: tag
  }
}
output x string = blob
"""
_INNER = """
param innerName string
resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: innerName
}
"""
_CONSTANTS = {"names": "ids", "prefix": "'${prefix}-x'", "enabled": "!empty(prefix)", "tag": "st.name",
              "blob": "st.properties.primaryEndpoints.blob"}

# Each must be flagged in the declaring file: a runtime value passed to a module parameter that needs a constant.
_MODULE_FLAGGED = {
    "a module output into a name, through the module's variable": ({"prefix": "m.outputs.x"}, ["m.outputs"]),
    "a runtime property into a loop's collection": ({"names": "st.properties.ids"}, ["st.properties"]),
    "a module output into a condition": ({"enabled": "m.outputs.enabled"}, ["m.outputs"]),
    "a runtime value into a name of the module's own module": ({"tag": "reference('x').name"}, ["reference()"]),
}


def _module_case(tmp_path: Path, params: dict[str, str]) -> list[Path]:
    (tmp_path / "mod.bicep").write_text(_MODULE)
    (tmp_path / "inner.bicep").write_text(_INNER)
    passed = "\n".join(f"    {name}: {value}" for name, value in {**_CONSTANTS, **params}.items())
    main = _case(tmp_path, f"module mod './mod.bicep' = {{\n  name: 'mod'\n  params: {{\n{passed}\n  }}\n}}\n")
    return [main, tmp_path / "mod.bicep", tmp_path / "inner.bicep"]


@pytest.mark.parametrize("case", sorted(_MODULE_FLAGGED))
def test_bicep_lint_follows_module_parameters(tmp_path: Path, case: str) -> None:
    params, reaches = _MODULE_FLAGGED[case]
    found = _bicep_lint(*_module_case(tmp_path, params))
    [name] = params
    assert [(f["code"], f["file"].endswith("case.bicep"), f["reaches"]) for f in found] == \
        [("module-param", True, reaches)], found
    assert f"the param {name} of module mod" in found[0]["where"]


def test_bicep_lint_passes_constants_to_module_parameters(tmp_path: Path) -> None:
    # Runtime values may go to the parameters the module uses as values only (blob); the module and the module it
    # declares pass on their own.
    assert _bicep_lint(*_module_case(tmp_path, {})) == []


def test_bicep_lint_refuses_a_missing_module(tmp_path: Path) -> None:
    # Not read, not checked: say so.
    (tmp_path / "mod.bicep").write_text(_MODULE.replace("./inner.bicep", "./missing.bicep"))
    assert [(f["code"], f["reaches"]) for f in _bicep_lint(tmp_path / "mod.bicep")] == \
        [("module", ["./missing.bicep: no such file"])]


# --- What the Bicep linter checks --------------------------------------------------------------------------------

# The hosts the Bicep linter's no-hardcoded-env-urls rule refuses by default
# (https://learn.microsoft.com/azure/azure-resource-manager/bicep/linter-rule-no-hardcoded-environment-urls).
LINTER_CLOUD_HOSTS = ("gallery.azure.com", "management.core.windows.net", "management.azure.com",
                      "database.windows.net", "core.windows.net", "login.microsoftonline.com", "graph.windows.net",
                      "trafficmanager.net", "datalake.azure.net", "azuredatalakestore.net",
                      "azuredatalakeanalytics.net", "vault.azure.net", "api.loganalytics.io", "asazure.windows.net",
                      "region.asazure.windows.net", "batch.core.windows.net")


def test_no_cloud_specific_hosts_in_bicep_strings() -> None:
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("//"):
                continue
            for host in LINTER_CLOUD_HOSTS:
                assert host not in line, f"{path.name}:{number}: {host} differs per cloud: use environment()"


def test_linter_suppressions_name_the_right_code() -> None:
    for path in BICEP_FILES:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip().startswith("#disable-next-line"):
                # Only `location` on the publishing credential policies, which the type lacks (BCP187) and ARM needs.
                assert line.split()[1:] == ["BCP187"] and lines[number + 1].strip() == "location: location", \
                    f"{path.relative_to(INFRA)}:{number + 1}: {line.strip()}"
