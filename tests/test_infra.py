"""Offline checks of the Azure deployment in infra/ (nothing is deployed).

- checkov (own virtualenv .venv-checkov) finds no failed check; the only skips are the ones listed here, each
  suppressed in the Bicep with a written reason;
- every .bicep file parses with pycep-parser and tree-sitter-bicep, and keeps Bicep's deploy-time-constant rules
  (infra/bicep_lint.py, itself tested on small snippets), which no offline parser checks and the compiler enforces;
- the settings contract: the Bicep app settings and local.settings.json.example carry every setting of
  shared/core/settings.py with its default, and nothing else but host settings;
- role assignments use documented built-in role ids, scoped to resources;
- the lifecycle policy (what expires is what the code no longer needs; the detections outbox never does),
  diagnostic settings and name limits; the alert rules read only fields the code's health writers write, and the
  lag rule and PULL_MAX_LAG_SECONDS share one parameter;
- shellcheck passes on infra/*.sh; the scripts behave against a fake `az` (errors, idempotency, what-if, refused
  parameters, 403);
- infra/package.py packages only what git tracks, less .funcignore, in a deterministic zip.

Tools missing (checkov venv, shellcheck) fail the test with "run make test"; nothing is skipped silently.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared.core.settings import HOST_SETTING_PREFIXES, SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
MAIN_BICEP = INFRA / "main.bicep"
PARAMETERS_JSON = INFRA / "main.parameters.json"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.json.example"
CHECKOV_VENV = ROOT / ".venv-checkov"
SCRIPTS = sorted(INFRA.glob("*.sh"))
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Built-in role ids (reference: azure-functions-and-friends.md §9;
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
BUILT_IN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Azure Event Hubs Data Owner": "f526a384-b230-433a-b45c-95f59c4a2dec",
    "Azure Event Hubs Data Sender": "2b629674-e913-4c01-ae53-ef4638d8f975",
    "Azure Event Hubs Data Receiver": "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
# What graphlake's identity may hold: least privilege (no Event Hubs Data Owner, no queue/table roles).
ALLOWED_ROLES = {"Storage Blob Data Owner", "Storage Blob Data Contributor", "Azure Event Hubs Data Sender",
                 "Azure Event Hubs Data Receiver", "Monitoring Metrics Publisher"}
REQUIRED_ROLES = {"Azure Event Hubs Data Sender", "Azure Event Hubs Data Receiver", "Monitoring Metrics Publisher"}

# checkov findings that may be suppressed in the Bicep (each with its reason there). Anything else must pass.
ALLOWED_SKIPS = {
    "CKV_AZURE_35",   # storage firewall default Deny: Flex without VNet has no fixed outbound addresses
    "CKV_AZURE_59",   # storage public network access: same reason
    "CKV_AZURE_43",   # storage account name is an expression checkov cannot evaluate
    "CKV_AZURE_225",  # plan zone redundancy: a parameter, off where Flex does not offer it
    "CKV_AZURE_212",  # numberOfWorkers: App Service plan setting, none on Flex
    "CKV_AZURE_78",   # ftpsState: Flex has no FTP and rejects the property
    "CKV_AZURE_213",  # health check: no HTTP trigger
    "CKV_AZURE_222",  # site public network access: needed by deploy.sh's zip deploy
    "CKV_AZURE_17",   # client certificates: no HTTP clients
    # On the `appsettings` config child, which checkov reads as the site's web config:
    "CKV_AZURE_13",   # App Service authentication: no HTTP trigger
    "CKV_AZURE_63",   # HTTP logging: no HTTP trigger
    "CKV_AZURE_65",   # detailed error messages: no HTTP trigger
    "CKV_AZURE_66",   # failed request tracing: no HTTP trigger
    "CKV_AZURE_80",   # .NET Framework version: a Python app
    "CKV_AZURE_88",   # Azure Files: Flex has no content share
}

# App settings the Bicep computes from resources, so their value differs from the code's local default.
DERIVED_SETTINGS = {"STATE_URL", "LAKE_URL", "EventHubConnection__fullyQualifiedNamespace", "AZURE_CLIENT_ID",
                    "GRAPH_CLIENT_ID", "GRAPH_TENANT_ID", "GRAPH_AUTHORITY_HOST"}
# Not on Flex Consumption (runtime lives in functionAppConfig; no content share; deployment is blob-based), and no
# secrets: host storage goes through the identity, not a connection string.
FORBIDDEN_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                      "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTOVERVNET",
                      "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "AzureWebJobsStorage",
                      "APPINSIGHTS_INSTRUMENTATIONKEY", "WEBSITE_TIME_ZONE", "TZ"}

MAKE_TEST = "run `make test`, which installs it"


def _need_checkov_venv() -> Path:
    python = CHECKOV_VENV / "bin" / "python"
    if not (CHECKOV_VENV / "bin" / "checkov").exists() or not python.exists():
        pytest.fail(f"{CHECKOV_VENV} (checkov, pycep-parser, tree-sitter-bicep) is missing: {MAKE_TEST} "
                    "from infra/requirements-checks.txt")
    return python


def _need_shellcheck() -> str:
    path = shutil.which("shellcheck")
    if not path:
        pytest.fail(f"shellcheck is not installed: {MAKE_TEST} (apt-get install shellcheck)")
    return path


# --- Facts from the Bicep, extracted in the checkov venv -------------------------------------------------------

# Runs under .venv-checkov/bin/python: parses each file with pycep and tree-sitter-bicep and reports syntax errors,
# then reads main.bicep's parameters, variables and role assignments off the tree-sitter syntax tree.
_FACTS_SCRIPT = r'''
import json, sys
from pathlib import Path
import pycep
import tree_sitter_bicep
from tree_sitter import Language, Parser

parser = Parser(Language(tree_sitter_bicep.language()))
out = {"files": {}, "params": {}, "vars": {}, "role_assignments": [], "resources": []}

def text(node):
    return node.text.decode()

def first_error(node):
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        found = first_error(child)
        if found is not None:
            return found
    return None

def value(node):
    t = node.type
    if t == "string":
        if any(c.type == "interpolation" for c in node.named_children):
            return {"kind": "expr", "text": text(node)}
        return {"kind": "string", "value": "".join(text(c) for c in node.named_children if c.type != "interpolation")
                if node.named_children else "", "text": text(node)}
    if t == "number":
        return {"kind": "number", "value": text(node), "text": text(node)}
    if t == "boolean":
        return {"kind": "bool", "value": text(node), "text": text(node)}
    if t == "identifier":
        return {"kind": "identifier", "value": text(node), "text": text(node)}
    if t == "object":
        props = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            key, val = prop.named_children[0], prop.named_children[-1]
            name = text(key)
            if key.type == "string":
                name = "".join(text(c) for c in key.named_children)
            props[name] = value(val)
        return {"kind": "object", "value": props, "text": text(node)}
    if t == "array":
        return {"kind": "array", "value": [value(c) for c in node.named_children], "text": text(node)}
    return {"kind": "expr", "text": text(node)}

def decorators(node):
    found = {}
    for dec in (node.named_children if node is not None else []):
        call = dec.named_children[0]
        if call.type == "call_expression":
            args = call.named_children[1].named_children
            found[text(call.named_children[0])] = [value(a) for a in args]
    return found

for path in map(Path, sys.argv[1:]):
    src = path.read_bytes()
    entry = {"pycep_error": None, "tree_sitter_error": None}
    try:
        pycep.BicepParser().parse(file_path=path)
    except Exception as exc:
        entry["pycep_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    tree = parser.parse(src)
    err = first_error(tree.root_node)
    if err is not None:
        entry["tree_sitter_error"] = f"line {err.start_point[0] + 1}, column {err.start_point[1] + 1}: " \
                                     f"{src[err.start_byte:err.start_byte + 60].decode(errors='replace')!r}"
    out["files"][str(path)] = entry
    if path.name != "main.bicep" or err is not None:
        continue
    pending = None
    for node in tree.root_node.named_children:
        kids = node.named_children
        if node.type == "decorators":
            pending = node
            continue
        decs, pending = decorators(pending), None
        if node.type == "parameter_declaration":
            default = value(kids[-1]) if len(kids) >= 3 else None
            out["params"][text(kids[0])] = {"default": default, "decorators": decs}
        elif node.type == "variable_declaration":
            out["vars"][text(kids[0])] = value(kids[-1])
        elif node.type == "resource_declaration":
            rtype = text(kids[1]).strip("'")
            body_node = kids[-1]
            loop = text(body_node.named_children[1]) if body_node.type == "for_statement" else None
            inner_node = body_node.named_children[-1] if loop else body_node
            condition = None
            if inner_node.type == "if_statement":
                condition, inner_node = text(inner_node.named_children[0]), inner_node.named_children[-1]
            body = value(inner_node)
            out["resources"].append({"symbol": text(kids[0]), "type": rtype, "loop_over": loop,
                                     "condition": condition, "body": body})
            if rtype.startswith("Microsoft.Authorization/roleAssignments@") and body["kind"] == "object":
                props = body["value"]
                inner = props.get("properties", {}).get("value", {})
                out["role_assignments"].append({
                    "symbol": text(kids[0]),
                    "loop_over": loop,
                    "scope": props.get("scope", {}).get("text"),
                    "roleDefinitionId": inner.get("roleDefinitionId", {}).get("text"),
                    "principalId": inner.get("principalId", {}).get("text"),
                    "principalType": inner.get("principalType", {}).get("text"),
                })
print(json.dumps(out))
'''


@cache
def bicep_facts() -> dict[str, Any]:
    python = _need_checkov_venv()
    assert BICEP_FILES, "no .bicep files under infra/"
    proc = subprocess.run([str(python), "-c", _FACTS_SCRIPT, *map(str, BICEP_FILES)],
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


def same_as_default(setting: str, value: str) -> bool:
    field = next(f for f in Settings.model_fields.values() if f.alias == setting)
    attr = next(k for k, f in Settings.model_fields.items() if f.alias == setting)
    parsed = Settings.model_validate({setting: value})
    return getattr(parsed, attr) == field.default


# --- checkov ---------------------------------------------------------------------------------------------------

def test_checkov_finds_no_failed_check() -> None:
    _need_checkov_venv()
    proc = subprocess.run(
        [str(CHECKOV_VENV / "bin" / "checkov"), "-d", str(INFRA), "--framework", "bicep", "--skip-download",
         "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    assert bicep, f"checkov produced no bicep report: {[r.get('check_type') for r in reports]}"
    results, summary = bicep[0]["results"], bicep[0]["summary"]

    failures = [f"{c['check_id']} {c['check_name']}\n    {c['resource']} ({c['file_path']}:"
                f"{c['file_line_range'][0]}-{c['file_line_range'][1]})\n    {c.get('guideline') or ''}"
                for c in results.get("failed_checks", [])]
    assert not failures, "checkov failed checks (fix them, or suppress in the Bicep with " \
                         "`// checkov:skip=CKV_AZURE_x: reason` when the check does not apply):\n" + "\n".join(failures)
    assert summary["parsing_errors"] == 0, f"checkov could not parse: {results.get('parsing_errors')}"
    assert summary["resource_count"] >= 15, f"checkov scanned too little: {summary}"
    assert summary["passed"] > 0

    for skipped in results.get("skipped_checks", []):
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert skipped["check_id"] in ALLOWED_SKIPS, \
            f"{skipped['check_id']} is suppressed on {skipped['resource']}, but not in ALLOWED_SKIPS: fix it, or " \
            f"justify it in the Bicep and add it here"
        assert len(reason.split()) >= 8, f"{skipped['check_id']} on {skipped['resource']}: write why it does not " \
                                         f"apply, not {reason!r}"


def test_every_suppression_has_a_reason() -> None:
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                assert re.search(r"//\s*checkov:skip=CKV2?_[A-Z]+_\d+:\s*\S.{30,}", line), \
                    f"{path.name}:{number}: a checkov skip needs `: <reason>` of some length: {line.strip()}"


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


# --- Values ARM needs before the deployment starts (what the Bicep compiler checks) ------------------------------

def _bicep_lint(*paths: Path) -> list[dict[str, Any]]:
    python = _need_checkov_venv()
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
    path = tmp_path / "case.bicep"
    path.write_text(_LINT_PRELUDE + snippet)
    found = _bicep_lint(path)
    assert [(f["code"], f["reaches"]) for f in found] == [(code, reaches)], found


def test_bicep_lint_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "case.bicep"
    path.write_text(_LINT_PRELUDE + "resource broken 'Microsoft.Storage/storageAccounts@2023-05-01' = [for x in : {\n")
    assert [f["code"] for f in _bicep_lint(path)] == ["syntax"]


@pytest.mark.parametrize("case", sorted(_LINT_PASSING))
def test_bicep_lint_passes_deploy_time_constants(tmp_path: Path, case: str) -> None:
    path = tmp_path / "case.bicep"
    path.write_text(_LINT_PRELUDE + _LINT_PASSING[case])
    assert _bicep_lint(path) == []


# --- The settings contract ---------------------------------------------------------------------------------------

def test_bicep_sets_every_setting_with_its_default() -> None:
    settings = app_settings()
    missing = [name for name in SETTING_NAMES if name not in settings]
    assert not missing, f"app settings missing from main.bicep's appSettings: {missing}"

    wrong = []
    for name in SETTING_NAMES:
        default = Settings.model_fields[_attr(name)].default
        values = resolve(name, settings[name])
        if not values and name not in DERIVED_SETTINGS:
            wrong.append(f"{name} = {settings[name]['text']}: computed, but the code's default is {default!r}; "
                         "use that (or a parameter defaulting to it)")
        for where, value in values:
            if not same_as_default(name, value):
                wrong.append(f"{name} = {value!r} ({where}), but shared/core/settings.py defaults to {default!r}")
    assert not wrong, "\n".join(wrong)


def _attr(alias: str) -> str:
    return next(k for k, f in Settings.model_fields.items() if f.alias == alias)


def test_bicep_sets_nothing_but_known_settings() -> None:
    unknown = [name for name in app_settings()
               if name not in SETTING_NAMES and not name.startswith(HOST_SETTING_PREFIXES)]
    assert not unknown, f"main.bicep sets app settings the code does not read: {unknown}"
    forbidden = sorted(set(app_settings()) & FORBIDDEN_SETTINGS)
    assert not forbidden, f"settings that must not be set on Flex Consumption / with identity connections: {forbidden}"


def test_identity_based_host_connections() -> None:
    s = app_settings()
    literal = {name: node.get("value") for name, node in s.items() if node["kind"] == "string"}
    for prefix in ("AzureWebJobsStorage", "EventHubConnection"):
        assert literal.get(f"{prefix}__credential") == "managedidentity", f"{prefix}__credential"
        assert "identity.properties.clientId" in s[f"{prefix}__clientId"]["text"], f"{prefix}__clientId"
    assert "AzureWebJobsStorage__accountName" in s
    for name in ("AZURE_CLIENT_ID", "GRAPH_CLIENT_ID"):
        assert "identity.properties.clientId" in s[name]["text"], f"{name} must be the identity's client id"
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in s
    auth = s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]["text"]
    assert "ClientId=${identity.properties.clientId}" in auth and "Authorization=AAD" in auth
    assert "stateContainer" in s["STATE_URL"]["text"] and "lakeContainer" in s["LAKE_URL"]["text"]
    # The settings object is what the site actually gets (plus operator overrides, merged last), as the
    # `appsettings` config child: a for-expression over these runtime values cannot compile (BCP178).
    configs = [r for r in bicep_facts()["resources"] if r["type"].startswith("Microsoft.Web/sites/config@")]
    assert [(r["body"]["value"]["name"]["value"], r["body"]["value"]["properties"]["text"]) for r in configs] == \
        [("appsettings", "union(appSettings, appSettingOverrides)")], configs
    assert not re.search(r"^\s*appSettings:", MAIN_BICEP.read_text(), re.M), "app settings belong in the appsettings child"


def test_container_and_hub_defaults() -> None:
    params = bicep_facts()["params"]
    expected = {"lakeContainerName": "lake", "stateContainerName": "graphlake-state",
                "eventHubName": "graph-alerts", "eventHubConsumerGroupName": "normalizer", "eventHubSku": "Standard",
                "pythonVersion": "3.11", "graphEndpoint": "https://graph.microsoft.com"}
    for name, value in expected.items():
        assert params[name]["default"]["value"] == value, f"param {name}"
        if name in parameter_file_values():
            assert parameter_file_values()[name] == value, f"main.parameters.json {name}"
    # The sign-in host is the cloud's own (the code's default, login.microsoftonline.com, in the global cloud),
    # and no parameter file pins it to one cloud.
    assert params["graphAuthorityHost"]["default"]["text"] == \
        "split(environment().authentication.loginEndpoint, '/')[2]"
    assert "graphAuthorityHost" not in parameter_file_values()
    for name in ("instanceMemoryMB", "maximumInstanceCount", "eventHubPartitionCount", "deploymentContainerName"):
        assert name in params, f"main.bicep needs the parameter {name}"


def test_parameter_file_names_only_bicep_parameters() -> None:
    unknown = set(parameter_file_values()) - set(bicep_facts()["params"])
    assert not unknown, f"main.parameters.json sets parameters main.bicep does not declare: {sorted(unknown)}"


def test_local_settings_example() -> None:
    doc = json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())
    assert doc.get("IsEncrypted") is False and isinstance(doc.get("Values"), dict)
    values = doc["Values"]
    assert values.get("AzureWebJobsStorage") == "UseDevelopmentStorage=true"
    assert values.get("FUNCTIONS_WORKER_RUNTIME") == "python"
    missing = [name for name in SETTING_NAMES if name not in values]
    assert not missing, f"local.settings.json.example lacks {missing}"
    wrong = [f"{name}={values[name]!r}" for name in SETTING_NAMES if not same_as_default(name, values[name])]
    assert not wrong, f"local.settings.json.example differs from shared/core/settings.py defaults: {wrong}"
    assert all(isinstance(v, str) for v in values.values()), "local.settings.json values are strings"
    unknown = [name for name in values if name not in SETTING_NAMES and not name.startswith(HOST_SETTING_PREFIXES)]
    assert not unknown, f"local.settings.json.example has settings the code does not read: {unknown}"


# --- Roles -------------------------------------------------------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower()).removeprefix("azure")


def test_role_ids_are_the_documented_built_in_ids() -> None:
    roles = bicep_facts()["vars"].get("roles")
    assert roles and roles["kind"] == "object", "main.bicep has no `var roles = { ... }` of role ids"
    by_norm = {_norm(name): name for name in BUILT_IN_ROLES}
    for key, node in roles["value"].items():
        assert _norm(key) in by_norm, f"roles.{key}: not a role of the documented table {sorted(BUILT_IN_ROLES)}"
        name = by_norm[_norm(key)]
        assert node.get("value") == BUILT_IN_ROLES[name], f"roles.{key} must be {name} = {BUILT_IN_ROLES[name]}"
    # No role id anywhere else, e.g. a GUID pasted straight into an assignment.
    known = set(BUILT_IN_ROLES.values())
    for path in BICEP_FILES:
        for guid in re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", path.read_text(), re.I):
            assert guid.lower() in known, f"{path.name}: unknown GUID {guid} (a role id not in the table?)"


def test_role_assignments_are_least_privilege_and_resource_scoped() -> None:
    facts = bicep_facts()
    roles = {key: node["value"] for key, node in facts["vars"]["roles"]["value"].items()}
    name_of = {role_id: name for name, role_id in BUILT_IN_ROLES.items()}
    assignments = facts["role_assignments"]
    assert assignments, "no role assignments in main.bicep"
    assigned = set()
    for a in assignments:
        scope = a["scope"]
        assert scope and re.fullmatch(r"[A-Za-z_]\w*", scope), \
            f"{a['symbol']}: scope must be a resource symbol, not {scope!r}"
        assert scope not in ("resourceGroup", "subscription"), f"{a['symbol']}: scoped to the group"
        match = re.search(r"roles\.(\w+)", a["roleDefinitionId"] or "")
        assert match and match.group(1) in roles, f"{a['symbol']}: roleDefinitionId must use roles.<name>"
        assert "subscriptionResourceId('Microsoft.Authorization/roleDefinitions'" in a["roleDefinitionId"]
        role = name_of[roles[match.group(1)]]
        if a["principalId"] == "identity.properties.principalId":
            assert a["principalType"] == "'ServicePrincipal'", f"{a['symbol']}: principalType"
            assigned.add(role)
        else:
            # The only assignment to anyone else: the people and tools named in lakeReaderPrincipalIds may read
            # the lake container, nothing more.
            assert (a["loop_over"], a["principalId"], role, scope) == (
                "lakeReaderPrincipalIds", "principalId", "Storage Blob Data Reader", "lakeContainer"), a
    assert assigned <= ALLOWED_ROLES, f"roles beyond least privilege: {sorted(assigned - ALLOWED_ROLES)}"
    assert REQUIRED_ROLES <= assigned, f"missing roles: {sorted(REQUIRED_ROLES - assigned)}"
    assert assigned & {"Storage Blob Data Owner", "Storage Blob Data Contributor"}, "no blob data role"
    assert any(a["loop_over"] == "lakeReaderPrincipalIds" for a in assignments), "no lake reader assignment"


def test_storage_and_event_hubs_hardening_is_in_place() -> None:
    # checkov covers part of this; the rest of the list is asserted here on the text.
    src = MAIN_BICEP.read_text()
    for needle in ("allowSharedKeyAccess: false", "allowBlobPublicAccess: false", "minimumTlsVersion: 'TLS1_2'",
                   "supportsHttpsTrafficOnly: true", "deleteRetentionPolicy: {\n      enabled: true",
                   "disableLocalAuth: true", "minimumTlsVersion: '1.2'", "DisableLocalAuth: true",
                   "tier: 'FlexConsumption'", "type: 'UserAssigned'", "httpsOnly: true"):
        assert needle in src, f"main.bicep lacks {needle!r}"


# --- Storage lifecycle, diagnostics, names -----------------------------------------------------------------------

def _resources(type_prefix: str) -> list[dict[str, Any]]:
    return [r for r in bicep_facts()["resources"] if r["type"].startswith(type_prefix + "@")]


def _decorator(param: str, name: str) -> int | None:
    found = bicep_facts()["params"][param]["decorators"].get(name)
    return int(found[0]["value"]) if found else None


def test_lifecycle_expires_claim_checks_and_quarantine_and_keeps_the_lake() -> None:
    from shared.core.event_format import CLAIM_CHECK_PREFIX
    from shared.land.quarantine import PREFIX as QUARANTINE_PREFIX

    assert _resources("Microsoft.Storage/storageAccounts/managementPolicies"), "no lifecycle management policy"
    rules = bicep_facts()["vars"]["lifecycleRules"]["text"]
    # The prefixes are those the code writes under, in the state container.
    for prefix, days in ((CLAIM_CHECK_PREFIX, "claimCheckRetentionDays"), (QUARANTINE_PREFIX, "quarantineRetentionDays")):
        assert _deletes(rules, prefix, days), f"no rule deleting {prefix} after {days}"
    # A claim check outlives every event that can point to it.
    assert _decorator("claimCheckRetentionDays", "minValue") > _decorator("eventHubRetentionDays", "maxValue")
    params = bicep_facts()["params"]
    # The lake is never deleted, nor moved to cool, unless asked.
    assert params["lakeDeleteAfterDays"]["default"]["value"] == "0"
    assert params["lakeCoolAfterDays"]["default"]["value"] == "0"
    assert "lakeCoolAfterDays > 0 ? [" in rules and "lakeDeleteAfterDays > 0 ? [" in rules
    assert rules.count("prefix: '${lakeContainerName}/'") == 2


def _deletes(rules: str, prefix: str, days: str) -> bool:
    """Whether the lifecycle rules delete blobs under `prefix` of the state container after the parameter `days`."""
    return re.search(rf"prefix: '\$\{{stateContainerName\}}/{re.escape(prefix)}'\s+action: \{{\s+delete: \{{\s+"
                     rf"daysAfterModificationGreaterThan: {days}\s", rules) is not None


def _state_prefixes(rules: str) -> list[str]:
    return re.findall(r"prefix: '\$\{stateContainerName\}/([^']*)'", rules)


def test_lifecycle_expires_detection_state_only_once_no_alert_can_need_it() -> None:
    # The alert state and the sent markers matter only while their alert's dedup period is open: after it, a match
    # opens a fresh alert (new id) and nothing re-queues the old one. Both are written at or after the period's
    # start, so older than the longest period a rule may have, they are safe to delete.
    from detections.alerts import PREFIX as ALERT_STATE_PREFIX
    from detections.delivery import OUTBOX, SENT
    from detections.loader import MAX_DEDUP_MINUTES
    from detections.scheduled import SCHEDULE_PREFIX

    rules = bicep_facts()["vars"]["lifecycleRules"]["text"]
    for prefix in (ALERT_STATE_PREFIX, SENT):
        assert _deletes(rules, prefix, "detectionStateRetentionDays"), f"no rule deleting {prefix}"
    assert _decorator("detectionStateRetentionDays", "minValue") * 24 * 60 >= MAX_DEDUP_MINUTES
    # Undelivered alerts wait in the outbox until a destination takes them, however long; a rule's last run is one
    # small blob per rule.
    for kept in (OUTBOX, SCHEDULE_PREFIX):
        covering = [p for p in _state_prefixes(rules) if kept.startswith(p)]
        assert not covering, f"a lifecycle rule on {covering} would delete {kept}"


def test_a_dedup_period_longer_than_the_lifecycle_allows_is_refused(tmp_path: Path) -> None:
    from detections.loader import MAX_DEDUP_MINUTES, load_rules

    for minutes in (MAX_DEDUP_MINUTES, MAX_DEDUP_MINUTES + 1):
        (tmp_path / f"r{minutes}.py").write_text("def rule(event):\n    return True\n")
        (tmp_path / f"r{minutes}.yml").write_text(
            f"AnalysisType: rule\nFilename: r{minutes}.py\nRuleID: Custom.D{minutes}\n"
            f"LogTypes: [MicrosoftGraph.SecurityAlertV2]\nSeverity: Low\nDedupPeriodMinutes: {minutes}\n")
    rule_set = load_rules(tmp_path, with_pack=False)
    assert [r.rule_id for r in rule_set.rules] == [f"Custom.D{MAX_DEDUP_MINUTES}"]
    [refusal] = rule_set.refused
    assert "DedupPeriodMinutes" in str(refusal) and str(MAX_DEDUP_MINUTES) in str(refusal), refusal


def test_diagnostic_settings_send_blob_and_event_hubs_logs_to_the_workspace() -> None:
    settings = {r["body"]["value"]["scope"]["text"]: r["body"]["value"]["properties"]["value"]
                for r in _resources("Microsoft.Insights/diagnosticSettings")}
    assert set(settings) == {"blobService", "eventHubNamespace"}, settings
    for scope, props in settings.items():
        assert props["workspaceId"]["text"] == "logAnalytics.id", scope
    blob_logs = settings["blobService"]["logs"]["text"]
    assert "'StorageWrite'" in blob_logs and "'StorageDelete'" in blob_logs
    assert "'allLogs'" in settings["eventHubNamespace"]["logs"]["text"]


def test_name_parameters_have_the_lengths_azure_accepts() -> None:
    for name in ("lakeContainerName", "stateContainerName", "deploymentContainerName"):
        assert (_decorator(name, "minLength"), _decorator(name, "maxLength")) == (3, 63), name
    assert _decorator("eventHubConsumerGroupName", "maxLength") <= 50
    assert _decorator("eventHubName", "maxLength") <= 256


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
    lines = MAIN_BICEP.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("#disable-next-line"):
            # Only `location` on the publishing credential policies, which the type lacks (BCP187) and ARM needs.
            assert line.split()[1:] == ["BCP187"] and lines[number + 1].strip() == "location: location", \
                f"main.bicep:{number + 1}: {line.strip()}"


# --- Alert rules on the health records ---------------------------------------------------------------------------

# The health contract (shared/core/health.py; the README's health model): the fields each writer logs.
HEALTH_COMMON_FIELDS = {"component", "key", "updated"}
HEALTH_FIELDS = {
    "pull": {"result", "consecutive_failures", "error", "watermark", "lag_seconds", "unconfirmed_slices", "sent"},
    "normalize": {"result", "consecutive_failures", "error", "rows", "quarantined"},
    "reconcile": {"result", "missing", "late_found", "repaired", "error"},
    # Beyond the contract's list: the delivery record of detections/delivery.py.
    "detections": {"result", "undelivered", "delivered", "error"},
}


def _alert_rules() -> list[dict[str, Any]]:
    rules = bicep_facts()["vars"].get("alertRules")
    assert rules and rules["kind"] == "array", "main.bicep has no `var alertRules = [...]`"
    return [r["value"] for r in rules["value"]]


def test_alert_rules_cover_the_health_model() -> None:
    names = [r["name"]["value"] for r in _alert_rules()]
    assert len(names) == len(set(names))
    components = {}
    for rule in _alert_rules():
        query = rule["query"]["text"]
        assert query.startswith("'${healthEvents}|"), f"{rule['name']['value']}: read the health lines"
        found = re.findall(r'component == "(\w+)"', query)
        assert len(found) == 1 and found[0] in HEALTH_FIELDS, f"{rule['name']['value']}: one component, not {found}"
        components.setdefault(found[0], []).append(query)
        fields = set(re.findall(r"\bh\.(\w+)", query))
        unknown = fields - HEALTH_FIELDS[found[0]] - HEALTH_COMMON_FIELDS
        assert not unknown, f"{rule['name']['value']}: fields not in the {found[0]} health contract: {unknown}"
        assert rule["operator"]["value"] in ("GreaterThan", "LessThan")
        assert re.fullmatch(r"PT\d+[MH]", rule["window"]["value"])
        dimension = rule["dimension"]["value"]
        assert not dimension or re.search(rf"\b{dimension} = key\b", query), \
            f"{rule['name']['value']}: the dimension {dimension!r} must be a column of the result"
    # The list: failing runs in a row, lag, normalize failures, quarantine growth, late finds; plus silence
    # and alerts detections could not deliver.
    text = "\n".join(q for qs in components.values() for q in qs)
    for needle in ("h.consecutive_failures) >= ${alertConsecutiveFailures}", "h.lag_seconds) > ${pullMaxLagSeconds}",
                   '"failed", "gave_up"', "sum(toint(h.quarantined))", "h.late_found) > 0", "toint(h.undelivered)"):
        assert needle in text, f"no alert rule on {needle}"
    assert any(r["operator"]["value"] == "LessThan" and 'component == "pull"' in r["query"]["text"]
               for r in _alert_rules()), "no rule for a pull that stopped reporting"


def _health_writes() -> dict[str, set[str]]:
    """component -> the fields the code's `health.record(state, component, key, doc)` calls write, off the syntax
    tree: the keys of `doc` when it is a dict literal; when it is built elsewhere (a helper's result, **kwargs), every
    dict key and keyword argument of that module."""
    written: dict[str, set[str]] = {}
    for path in sorted([*(ROOT / "shared").rglob("*.py"), *(ROOT / "detections").rglob("*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        constants = {target.id: node.value.value for node in tree.body
                     if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                     for target in node.targets if isinstance(target, ast.Name)}
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "health.record"):
                continue
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            assert len(call.args) >= 4, f"{where}: health.record(state, component, key, doc) expected"
            component = call.args[1]
            name = component.value if isinstance(component, ast.Constant) else constants.get(ast.unparse(component))
            assert isinstance(name, str), f"{where}: the component should be a constant, not {ast.unparse(component)}"
            doc = call.args[3]
            if isinstance(doc, ast.Dict) and None not in doc.keys:
                fields = {key.value for key in doc.keys if isinstance(key, ast.Constant)}
            else:
                fields = {key.value for node in ast.walk(tree) if isinstance(node, ast.Dict) for key in node.keys
                          if isinstance(key, ast.Constant) and isinstance(key.value, str)}
                fields |= {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
                           for kw in node.keywords if kw.arg}
            written.setdefault(name, set()).update(fields)
    return written


def test_health_writers_write_the_contract() -> None:
    written = _health_writes()
    assert set(HEALTH_FIELDS) <= set(written), f"no health.record writer for {set(HEALTH_FIELDS) - set(written)}"
    for component, fields in HEALTH_FIELDS.items():
        assert fields <= written[component], f"the {component} writer lacks {fields - written[component]}"


def test_alert_rule_fields_are_written_by_the_code() -> None:
    written = _health_writes()
    for rule in _alert_rules():
        query = rule["query"]["text"]
        component = re.search(r'component == "(\w+)"', query).group(1)
        assert component in written, f"{rule['name']['value']} reads component {component}, which nothing writes"
        for field in set(re.findall(r"\bh\.(\w+)", query)) - HEALTH_COMMON_FIELDS:
            assert field in written[component], \
                f"{rule['name']['value']} reads {field}, which the {component} writer does not write"


def test_the_lag_rule_and_the_app_use_one_threshold() -> None:
    # graphlake status and the pull-lagging rule call the same source lagging.
    assert app_settings()["PULL_MAX_LAG_SECONDS"]["text"] == "string(pullMaxLagSeconds)"
    (lagging,) = [r for r in _alert_rules() if r["name"]["value"] == "pull-lagging"]
    assert "todouble(h.lag_seconds) > ${pullMaxLagSeconds}" in lagging["query"]["text"]


def test_alert_query_reads_what_health_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from shared.core import health
    from shared.core.storage import open_store

    events = bicep_facts()["vars"]["healthEvents"]["value"]
    assert events.lstrip().startswith("AppTraces\n"), "the rules read App Insights traces from the workspace"
    prefix = re.search(r'\| where Message startswith "([^"]+)"', events).group(1)
    skip = re.search(r'parse_json\(substring\(Message, strlen\("([^"]+)"\)\)\)', events).group(1)
    caplog.set_level(logging.INFO, logger="graphlake.health")
    health.record(open_store(str(tmp_path)), "pull", "contoso", {"result": "failed", "consecutive_failures": 3})
    message = next(r.getMessage() for r in caplog.records if r.name == "graphlake.health")
    assert message.startswith(prefix)
    doc = json.loads(message[len(skip):])
    assert (doc["component"], doc["key"], doc["consecutive_failures"]) == ("pull", "contoso", 3)


def test_alert_rules_mail_only_when_an_address_is_given() -> None:
    params = bicep_facts()["params"]
    assert params["alertEmail"]["default"]["value"] == ""
    groups = _resources("Microsoft.Insights/actionGroups")
    assert len(groups) == 1 and groups[0]["condition"] == "(!empty(alertEmail))"
    receivers = groups[0]["body"]["value"]["properties"]["value"]["emailReceivers"]["text"]
    assert "emailAddress: alertEmail" in receivers
    (rules,) = _resources("Microsoft.Insights/scheduledQueryRules")
    assert rules["loop_over"] == "alertRules"
    props = rules["body"]["value"]["properties"]["value"]
    assert props["scopes"]["text"].split() == ["[", "logAnalytics.id", "]"]
    assert "empty(alertEmail) ? [] :" in props["actions"]["text"]


# --- Scripts -----------------------------------------------------------------------------------------------------

def test_shellcheck_passes() -> None:
    shellcheck = _need_shellcheck()
    assert SCRIPTS, "no scripts in infra/"
    proc = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"shellcheck:\n{proc.stdout}{proc.stderr}"


def test_scripts_are_strict_and_executable() -> None:
    for script in SCRIPTS:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), f"{script.name}: shebang"
        assert "\nset -euo pipefail\n" in text, f"{script.name}: set -euo pipefail"
        assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"


FAKE_AZ = r'''#!/usr/bin/env python3
"""A stand-in for the az CLI: answers what deploy.sh and grant-graph-permission.sh ask, and logs every call."""
import json, os, sys
state_dir = os.environ["FAKE_AZ_STATE"]
args = sys.argv[1:]
line = " ".join(args)
with open(os.path.join(state_dir, "calls.log"), "a") as log:
    log.write(json.dumps(args) + "\n")

def state(name, default=""):
    path = os.path.join(state_dir, name)
    return open(path).read() if os.path.exists(path) else default

def put(name, value):
    open(os.path.join(state_dir, name), "w").write(value)

def opt(name):
    return args[args.index(name) + 1] if name in args else None

PRINCIPAL = "11111111-2222-3333-4444-555555555555"
GRAPH_SP = "99999999-8888-7777-6666-555555555555"
ROLE_ID = "472e4a4d-bb4a-4026-98d1-0b0d74cb74a5"
OUTPUTS = {"functionAppName": "func-graphlake-x", "identityName": "id-graphlake-x",
           "identityPrincipalId": PRINCIPAL, "identityClientId": "cid", "storageAccountName": "stgraphlakex",
           "lakeUrl": "https://stgraphlakex.blob.core.windows.net/lake",
           "lakeContainerId": "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/"
                              "stgraphlakex/blobServices/default/containers/lake",
           "stateUrl": "https://stgraphlakex.blob.core.windows.net/graphlake-state",
           "eventHubNamespace": "evhns-x.servicebus.windows.net", "eventHubName": "graph-alerts",
           "appInsightsName": "appi-x", "graphEndpoint": "https://graph.microsoft.com"}

if args[:1] == ["version"]:
    print("2.70.0")
elif args[:2] == ["account", "show"]:
    if os.environ.get("FAKE_AZ_LOGGED_OUT"):
        print("ERROR: Please run 'az login' to setup account.", file=sys.stderr)
        sys.exit(1)
    print("Test subscription\t00000000-0000-0000-0000-000000000000")
elif args[:2] == ["group", "exists"]:
    print("true" if state("group") else "false")
elif args[:2] == ["group", "create"]:
    put("group", opt("--location"))
elif args[:2] == ["group", "show"]:
    query = opt("--query")
    if query == "location":
        print(state("group"))
    elif query and query.startswith("tags."):
        print(state("tag"))
elif args[:2] == ["group", "update"]:
    put("tag", opt("--set").split("=", 1)[1])
elif args[:3] == ["deployment", "group", "create"]:
    assert opt("--template-file").endswith("main.bicep")
    print(json.dumps({k: {"type": "String", "value": v} for k, v in OUTPUTS.items()}))
elif args[:3] == ["deployment", "group", "what-if"]:
    assert opt("--template-file").endswith("main.bicep")
    print("Resource changes: 31 to create.")
elif args[:3] == ["deployment", "group", "show"]:
    key = opt("--query").split(".")[2]
    print(OUTPUTS[key])
elif args[:3] == ["functionapp", "function", "list"]:
    print("2" if state("published") else "0")
elif args[:4] == ["functionapp", "deployment", "source", "config-zip"]:
    assert opt("--build-remote") == "true", line
    assert os.path.getsize(opt("--src")) > 0
    put("published", state("published") + "x")
elif args[:1] == ["rest"]:
    url, method = opt("--url"), opt("--method")
    assert opt("--resource") == "https://graph.microsoft.com", line
    if method == "get" and "servicePrincipals(appId='00000003-0000-0000-c000-000000000000')" in url:
        print(GRAPH_SP)
    elif method == "get" and url.endswith(f"/servicePrincipals/{PRINCIPAL}/appRoleAssignments"):
        if os.environ.get("FAKE_AZ_DENY_READ"):
            print("ERROR: Forbidden({\"error\":{\"code\":\"Authorization_RequestDenied\",\"message\":"
                  "\"Insufficient privileges to complete the operation.\"}})", file=sys.stderr)
            sys.exit(1)
        print(state("granted"))
    elif method == "get" and f"/servicePrincipals/{GRAPH_SP}?" in url:
        print(ROLE_ID if "value=='SecurityAlert.Read.All'" in opt("--query") else "None")
    elif method == "post" and url.endswith(f"/servicePrincipals/{GRAPH_SP}/appRoleAssignedTo"):
        if os.environ.get("FAKE_AZ_DENY"):
            print("ERROR: Forbidden({\"error\":{\"code\":\"Authorization_RequestDenied\"}})", file=sys.stderr)
            sys.exit(1)
        body = json.loads(opt("--body"))
        assert body == {"principalId": PRINCIPAL, "resourceId": GRAPH_SP, "appRoleId": ROLE_ID}, body
        put("granted", state("granted") + ROLE_ID + "\n")
    else:
        print(f"fake az: unexpected call {line}", file=sys.stderr)
        sys.exit(2)
else:
    print(f"fake az: unexpected call {line}", file=sys.stderr)
    sys.exit(2)
'''


@pytest.fixture
def fake_az(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\n" + FAKE_AZ.split("\n", 1)[1])
    az.chmod(0o755)
    python3 = shutil.which("python3") or sys.executable
    (bin_dir / "python3").symlink_to(python3)
    state = tmp_path / "az-state"
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_AZ", "GRAPHLAKE_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", FAKE_AZ_STATE=str(state))
    return env


def _calls(env: dict[str, str]) -> list[list[str]]:
    log = Path(env["FAKE_AZ_STATE"]) / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run([bash, str(INFRA / script), *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.mark.parametrize("script", ["deploy.sh", "grant-graph-permission.sh"])
def test_script_explains_a_missing_az(tmp_path: Path, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):  # what the scripts run before looking for az
        (bin_dir / tool).symlink_to(shutil.which(tool))
    proc = _run(script, {"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert proc.returncode != 0
    assert "Azure CLI (az) is not installed" in proc.stderr, proc.stderr


@pytest.mark.parametrize("script", ["deploy.sh", "grant-graph-permission.sh"])
def test_script_explains_az_not_logged_in(fake_az: dict[str, str], script: str) -> None:
    proc = _run(script, {**fake_az, "FAKE_AZ_LOGGED_OUT": "1"})
    assert proc.returncode != 0
    assert "az login" in proc.stderr, proc.stderr


def test_deploy_needs_a_location_for_a_new_group(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test")
    assert proc.returncode != 0 and "--location" in proc.stderr, proc.stderr


def test_deploy_is_idempotent(fake_az: dict[str, str]) -> None:
    first = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "-p", "eventHubPartitionCount=8")
    assert first.returncode == 0, first.stderr
    assert "grant-graph-permission.sh -g rg-test" in first.stdout and "az group delete --name rg-test" in first.stdout
    calls = _calls(fake_az)
    assert sum(c[:2] == ["group", "create"] for c in calls) == 1
    deployments = [c for c in calls if c[:3] == ["deployment", "group", "create"]]
    assert len(deployments) == 1
    assert "location=westeurope" in deployments[0] and "eventHubPartitionCount=8" in deployments[0]
    assert any(a.endswith("main.parameters.json") for a in deployments[0])
    assert sum(c[:4] == ["functionapp", "deployment", "source", "config-zip"] for c in calls) == 1

    second = _run("deploy.sh", fake_az, "-g", "rg-test")
    assert second.returncode == 0, second.stderr
    calls = _calls(fake_az)
    assert sum(c[:2] == ["group", "create"] for c in calls) == 1, "the second run must not recreate the group"
    assert sum(c[:3] == ["deployment", "group", "create"] for c in calls) == 2
    assert sum(c[:4] == ["functionapp", "deployment", "source", "config-zip"] for c in calls) == 1, \
        "unchanged code must not be republished"
    assert "not republished" in second.stderr

    # Next steps: the lake reader role on the lake container, as lakeReaderPrincipalIds grants it, not the account.
    assert 'Storage Blob Data Reader" --assignee <your-upn-or-object-id>' in first.stdout
    assert "--scope /subscriptions/s/resourceGroups/rg-test/providers/Microsoft.Storage/storageAccounts/stgraphlakex/" \
           "blobServices/default/containers/lake\n" in first.stdout, first.stdout
    assert "lakeReaderPrincipalIds" in first.stdout

    forced = _run("deploy.sh", fake_az, "-g", "rg-test", "--force-code")
    assert forced.returncode == 0, forced.stderr
    assert sum(c[:4] == ["functionapp", "deployment", "source", "config-zip"] for c in _calls(fake_az)) == 2


def test_deploy_what_if_shows_changes_and_stops(fake_az: dict[str, str]) -> None:
    (Path(fake_az["FAKE_AZ_STATE"]) / "group").write_text("westeurope")
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "--what-if", "-p", "eventHubPartitionCount=8")
    assert proc.returncode == 0, proc.stderr
    assert "31 to create" in proc.stdout
    calls = _calls(fake_az)
    what_if = [c for c in calls if c[:3] == ["deployment", "group", "what-if"]]
    assert len(what_if) == 1 and "eventHubPartitionCount=8" in what_if[0] and "location=westeurope" in what_if[0]
    changing = [c for c in calls if c[:3] == ["deployment", "group", "create"] or c[:2] in (["group", "create"],
                ["group", "update"]) or c[:2] == ["functionapp", "deployment"]]
    assert not changing, changing


def test_deploy_what_if_needs_an_existing_group(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "--what-if")
    assert proc.returncode != 0 and "does not exist" in proc.stderr, proc.stderr
    assert not [c for c in _calls(fake_az) if c[:2] == ["group", "create"] or c[:1] == ["deployment"]]


_REFUSED_PARAMETERS = {
    "premium capacity": (["eventHubSku=Premium", "eventHubCapacity=3"],
                         "eventHubCapacity=3: Premium Event Hubs takes 1, 2, 4, 8 or 16 processing units"),
    "capacity above the auto-inflate maximum": (["eventHubCapacity=6"], "more than eventHubMaxThroughputUnits=4"),
    "zone redundancy on GRS": (["zoneRedundant=true"], "zoneRedundant=true needs zone-redundant storage"),
    "certificate credential": (["graphCredential=certificate"], "cannot load certificates"),
    "certificate source": (['graphSources=[{"id": "contoso", "credential": "certificate"}]'],
                           "source 'contoso' uses credential certificate"),
    "non-string override": (['appSettingOverrides={"PULL_LOOKBACK_DAYS": 30}'],
                            'appSettingOverrides.PULL_LOOKBACK_DAYS is 30, not a string'),
}


@pytest.mark.parametrize("case", sorted(_REFUSED_PARAMETERS))
def test_deploy_refuses_parameters_arm_would_reject(fake_az: dict[str, str], case: str) -> None:
    values, message = _REFUSED_PARAMETERS[case]
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", *(a for v in values for a in ("-p", v)))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert not [c for c in _calls(fake_az) if c[:2] == ["group", "create"] or c[:1] == ["deployment"]], \
        "nothing may be deployed"


def test_deploy_reads_refused_parameters_from_a_parameters_file(fake_az: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "mine.parameters.json"
    file.write_text(json.dumps({"parameters": {"eventHubSku": {"value": "Premium"},
                                               "eventHubCapacity": {"value": 12}}}))
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "-p", f"@{file}")
    assert proc.returncode != 0 and "eventHubCapacity=12: Premium" in proc.stderr, proc.stderr


def test_deploy_accepts_what_arm_accepts(fake_az: dict[str, str]) -> None:
    proc = _run("deploy.sh", fake_az, "-g", "rg-test", "-l", "westeurope", "--skip-code",
                "-p", "eventHubSku=Premium", "-p", "eventHubCapacity=4", "-p", "zoneRedundant=true",
                "-p", "storageSku=Standard_ZRS", "-p", 'appSettingOverrides={"PULL_LOOKBACK_DAYS": "30"}')
    assert proc.returncode == 0, proc.stderr


def test_grant_graph_permission_is_idempotent(fake_az: dict[str, str]) -> None:
    first = _run("grant-graph-permission.sh", fake_az, "-g", "rg-test")
    assert first.returncode == 0, first.stderr
    posts = [c for c in _calls(fake_az) if c[:1] == ["rest"] and "post" in c]
    assert len(posts) == 1

    second = _run("grant-graph-permission.sh", fake_az, "-g", "rg-test")
    assert second.returncode == 0, second.stderr
    assert "already granted" in second.stderr
    posts = [c for c in _calls(fake_az) if c[:1] == ["rest"] and "post" in c]
    assert len(posts) == 1, "the second run must not post the assignment again"
    # The existing assignments are read before any POST.
    calls = _calls(fake_az)
    first_get = next(i for i, c in enumerate(calls) if c[:1] == ["rest"] and any("appRoleAssignments" in a for a in c))
    first_post = next(i for i, c in enumerate(calls) if c[:1] == ["rest"] and "post" in c)
    assert first_get < first_post


def test_grant_graph_permission_explains_missing_rights(fake_az: dict[str, str]) -> None:
    proc = _run("grant-graph-permission.sh", {**fake_az, "FAKE_AZ_DENY": "1"}, "-g", "rg-test")
    assert proc.returncode != 0
    assert "403: you need Privileged Role Administrator or Global Administrator" in proc.stderr, proc.stderr


def test_grant_graph_permission_says_403_not_not_found(fake_az: dict[str, str]) -> None:
    # A caller without directory rights gets 403 reading the identity's assignments: that is not a missing
    # identity, and waiting for it to appear does not help.
    proc = _run("grant-graph-permission.sh", {**fake_az, "FAKE_AZ_DENY_READ": "1"}, "-g", "rg-test")
    assert proc.returncode != 0
    assert "403: you need Privileged Role Administrator or Global Administrator" in proc.stderr, proc.stderr
    assert "not found" not in proc.stderr and "retrying" not in proc.stderr, proc.stderr
    reads = [c for c in _calls(fake_az) if c[:1] == ["rest"] and any(a.endswith("/appRoleAssignments") for a in c)]
    assert len(reads) == 1, "a 403 must not be retried"


def test_grant_graph_permission_rejects_an_unknown_role(fake_az: dict[str, str]) -> None:
    proc = _run("grant-graph-permission.sh", fake_az, "-g", "rg-test", "--role", "NoSuch.Role")
    assert proc.returncode != 0 and "no application role 'NoSuch.Role'" in proc.stderr, proc.stderr


# --- The package -------------------------------------------------------------------------------------------------

def _package(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(INFRA / "package.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_package_holds_only_what_git_tracks(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone))
    tracked = set(_git(clone, "ls-files").split())
    # What a developer's work tree holds beside the code: secrets, Azurite's data, a stray new module.
    untracked = [".env", ".azurite/__blobstorage__/x", ".azurite/__azurite_db_blob__.json", "shared/scratch.py",
                 "notes.txt"]
    for rel in untracked:
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text("SECRET=1\n")
    proc = _package("--root", str(clone), "--list")
    assert proc.returncode == 0, proc.stderr
    listed = set(proc.stdout.split())
    assert not listed & set(untracked), f"untracked files packaged: {sorted(listed & set(untracked))}"
    assert listed <= tracked
    assert {"host.json", "requirements.txt", "function_app.py", "shared/core/settings.py"} <= listed


def test_package_refuses_a_tree_git_does_not_track(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{}")
    (tmp_path / "requirements.txt").write_text("azure-functions\n")
    proc = _package("--root", str(tmp_path), "--list")
    assert proc.returncode != 0 and "git" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_funcignore_rules(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".funcignore", tmp_path / ".funcignore")
    kept = ["function_app.py", "host.json", "requirements.txt", "shared/core/settings.py", "normalizers/core.py",
            "shared/tests/helper.py"]  # only the top-level tests/ is excluded
    dropped = ["tests/test_x.py", "bench/run.py", "simulator/graph.py", "infra/main.bicep", "docs/deploy.md",
               ".venv/lib/x.py", ".venv-checkov/bin/checkov", "node_modules/a/b.js", "lake/p.parquet",
               "state/w.json", "shared/__pycache__/settings.cpython-311.pyc", "local.settings.json",
               "local.settings.json.example", "README.md", "Makefile", "pyproject.toml", "requirements-dev.txt",
               ".gitignore", ".github/workflows/ci.yml", ".ci/run", ".pytest_cache/v/x", ".demo/x",
               ".env", ".env.local", ".azurite/__blobstorage__/x"]
    for rel in kept + dropped:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    _git(tmp_path, "init", "--quiet")
    _git(tmp_path, "add", "--force", "--", *kept, *dropped)
    proc = _package("--root", str(tmp_path), "--list")
    assert proc.returncode == 0, proc.stderr
    listed = set(proc.stdout.split())
    assert set(kept) <= listed, sorted(set(kept) - listed)
    assert not listed & set(dropped), sorted(listed & set(dropped))


def test_package_of_this_repo_is_deterministic(tmp_path: Path) -> None:
    first, second = _package("--out", str(tmp_path / "a.zip")), _package("--out", str(tmp_path / "b.zip"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", first.stdout) and first.stdout == second.stdout
    names = zipfile.ZipFile(tmp_path / "a.zip").namelist()
    assert {"host.json", "requirements.txt", "shared/core/settings.py"} <= set(names)
    for prefix in ("tests/", "bench/", "simulator/", "infra/", ".venv", "node_modules/", "lake/", "state/"):
        assert not any(n.startswith(prefix) for n in names), f"{prefix} must not be packaged"


def test_package_refuses_a_tree_without_host_json(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("azure-functions\n")
    _git(tmp_path, "init", "--quiet")
    _git(tmp_path, "add", "requirements.txt")
    proc = _package("--root", str(tmp_path), "--out", str(tmp_path / "x.zip"))
    assert proc.returncode != 0 and "host.json" in proc.stderr


def test_requirements_checks_pins_checkov() -> None:
    pins = (INFRA / "requirements-checks.txt").read_text()
    for package in ("checkov==3.3.30", "pycep-parser==", "tree-sitter==", "tree-sitter-bicep=="):
        assert package in pins, f"infra/requirements-checks.txt must pin {package}"


def test_readme_deploy_section_covers_the_essentials() -> None:
    doc = (ROOT / "README.md").read_text().split("## Deploy to Azure", 1)[1]
    for needle in ("infra/deploy.sh", "infra/grant-graph-permission.sh", "az group delete", "43,200",
                   "SecurityAlert.Read.All", "@Microsoft.KeyVault(SecretUri=", "GRAPH_CREDENTIAL=client_secret"):
        assert needle in doc, f"the README's Deploy section should mention {needle!r}"

