"""The alert rules read only fields the code's health writers write, and the lag rule and PULL_MAX_LAG_SECONDS share
one parameter; the action group exists only with an address to mail."""

from __future__ import annotations

import ast
import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.facts import (ROOT, app_settings, bicep_facts, denotes, kql_diagnostics, main_param, param_values,
                               resources, var_file)


# The health contract (shared/core/health.py; the README's health model): the fields each writer logs.
HEALTH_COMMON_FIELDS = {"component", "key", "updated"}
HEALTH_FIELDS = {
    "pull": {"result", "consecutive_failures", "error", "watermark", "lag_seconds", "unconfirmed_slices", "sent",
             "watermark_ahead_seconds", "clock_skew_seconds"},
    "normalize": {"result", "consecutive_failures", "error", "rows", "quarantined"},
    # normalize_logs (the logs hub's trigger) writes the normalizer's record under its own component, and when it
    # last landed records (logs-silent reads it).
    "normalize_logs": {"result", "consecutive_failures", "error", "rows", "quarantined", "last_landed"},
    "reconcile": {"result", "missing", "late_found", "repaired", "resent", "landed", "unsent", "pending",
                  "not_landed", "not_landed_since", "eventhub", "consumer_group", "error"},
    # Beyond the contract's list: the delivery record of detections/delivery.py.
    "detections": {"result", "undelivered", "delivered", "error"},
}


def _fields(query: str) -> set[str]:
    """The health record fields a query reads: h.name, or bracketed, h["name"] (as a KQL keyword must be)."""
    return {dotted or bracketed for dotted, bracketed in
            re.findall(r"""\bh(?:\.(\w+)|\.?\[\s*["'](\w+)["']\s*\])""", query)}


def _alert_rules() -> list[dict[str, Any]]:
    rules = bicep_facts()["vars"].get("alertRules")
    assert rules and rules["kind"] == "array", "no .bicep file has a `var alertRules = [...]`"
    return [r["value"] for r in rules["value"]]


def _bicep_string(text: str, values: dict[str, str]) -> str:
    """The value of a single-quoted Bicep string literal, its ${name} interpolations replaced from values."""
    assert text.startswith("'") and text.endswith("'") and not text.startswith("'''"), text[:80]
    escapes = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "$": "$"}
    out = []
    for escape, name, char in re.findall(r"\\(u\{[0-9A-Fa-f]+\}|.)|\$\{([^}]*)\}|(.)", text[1:-1], re.DOTALL):
        if escape:
            assert escape.startswith("u{") or escape in escapes, f"Bicep has no escape \\{escape}"
            out.append(chr(int(escape[2:-1], 16)) if escape.startswith("u{") else escapes[escape])
        elif name:
            assert name.strip() in values, f"${{{name}}} is not a variable or parameter known offline"
            out.append(values[name.strip()])
        else:
            out.append(char)
    return "".join(out)


def _rule_queries() -> dict[str, str]:
    """Each alert rule's query as Azure Monitor gets it: string variables and the parameters' values substituted, once
    for each combination of the values a default deployment can give them (Bicep default, main.parameters.json)."""
    facts = bicep_facts()
    file = var_file("alertRules")
    strings = {name: v["value"] for name, v in facts["vars"].items()
               if v["kind"] == "string" and facts["var_files"][name] == file}
    queries = {}
    for rule in _alert_rules():
        name, node = rule["name"]["value"], rule["query"]
        used = sorted(set(re.findall(r"\$\{\s*(\w+)\s*\}", node["text"])) - set(strings))
        choices = [sorted({value for _, value in param_values(file, param)}) for param in used]
        for param, values in zip(used, choices):
            assert values, f"{name}: the query uses ${{{param}}}, whose value is not known offline"
        for combination in itertools.product(*choices):
            given = dict(zip(used, combination))
            label = name + "".join(f" {k}={v}" for k, v in given.items() if len(choices[used.index(k)]) > 1)
            queries[label] = _bicep_string(node["text"], {**strings, **given})
    return queries


def _kql_errors(diagnostics: dict[str, list[dict[str, Any]]], queries: dict[str, str]) -> list[str]:
    return [f"{name}: {d['code']} {d['message']} at offset {d['start']}: "
            f"...{queries[name][max(0, d['start'] - 30):d['start'] + d['length'] + 30]!r}..."
            for name, found in diagnostics.items() for d in found if d["severity"] == "Error"]


def test_the_kql_check_finds_keywords_and_unknown_columns() -> None:
    # The check itself: Microsoft's parser rejects a keyword used as a name and a column AppTraces lacks, and accepts
    # the columns the workspace's AppTraces table has.
    events = bicep_facts()["vars"]["healthEvents"]["value"]
    queries = {
        "keyword": events + "| where toint(h.missing) > 0",
        "column": "AppTraces | where Severity > 1",
        "table": "AppTrace | take 1",
        "good": events + '| where toint(h["missing"]) > 0 | project TimeGenerated, SeverityLevel, Properties, '
                         "AppRoleName, OperationName, _ResourceId",
    }
    found = kql_diagnostics(queries)
    errors = {name: {d["code"] for d in ds if d["severity"] == "Error"} for name, ds in found.items()}
    assert errors["keyword"] >= {"KS228"}, found["keyword"]
    assert errors["column"] == {"KS142"}, found["column"]
    assert errors["table"], found["table"]
    assert not errors["good"], _kql_errors(found, queries)


def test_alert_queries_pass_microsofts_kusto_parser() -> None:
    # skipQueryValidation (alerts.bicep) means Azure does not check the queries at deployment; a query the workspace
    # cannot run fails only at evaluation, so the rule never fires.
    queries = _rule_queries()
    assert len(queries) >= len(_alert_rules())
    errors = _kql_errors(kql_diagnostics(queries), queries)
    assert not errors, "alert rule queries that Azure Monitor cannot run:\n" + "\n".join(errors)


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
        fields = _fields(query)
        unknown = fields - HEALTH_FIELDS[found[0]] - HEALTH_COMMON_FIELDS
        assert not unknown, f"{rule['name']['value']}: fields not in the {found[0]} health contract: {unknown}"
        assert rule["operator"]["value"] in ("GreaterThan", "LessThan")
        assert re.fullmatch(r"PT\d+[MH]", rule["window"]["value"])
        dimension = rule["dimension"]["value"]
        assert not dimension or re.search(rf"\b{dimension} = key\b", query), \
            f"{rule['name']['value']}: the dimension {dimension!r} must be a column of the result"
    # The list: failing runs in a row, lag, normalize failures, quarantine growth, late finds, versions sent
    # but not landed; plus silence and alerts detections could not deliver.
    text = "\n".join(q for qs in components.values() for q in qs)
    for needle in ("h.consecutive_failures) >= ${alertConsecutiveFailures}", "h.lag_seconds) > ${pullMaxLagSeconds}",
                   '"failed", "gave_up"', "sum(toint(h.quarantined))", "h.late_found) > 0", "toint(h.undelivered)",
                   "toint(h.not_landed) > 0"):
        assert needle in text, f"no alert rule on {needle}"
    # The logs hub's normalizer is watched as the alerts' is: failures and quarantine, per partition.
    queries = {r["name"]["value"]: r["query"]["text"] for r in _alert_rules()}
    for alerts_rule, logs_rule in (("normalize-failing", "normalize-logs-failing"),
                                   ("quarantine-growing", "logs-quarantine-growing")):
        assert queries[logs_rule] == queries[alerts_rule].replace('component == "normalize"',
                                                                  'component == "normalize_logs"'), logs_rule
    assert any(r["operator"]["value"] == "LessThan" and 'component == "pull"' in r["query"]["text"]
               for r in _alert_rules()), "no rule for a pull that stopped reporting"
    # Streamed logs that stopped, judged as graphlake status judges them: by the last landing, against the setting.
    assert "last_landed < ago(${logsMaxSilenceSeconds}s)" in queries["logs-silent"]
    assert app_settings()["LOGS_MAX_SILENCE_SECONDS"]["text"] == "string(logsMaxSilenceSeconds)"
    for file in (var_file("appSettings"), var_file("alertRules")):
        assert main_param(file, "logsMaxSilenceSeconds") == "logsMaxSilenceSeconds", file


def _health_writes() -> dict[str, set[str]]:
    """component -> the fields the code's `health.record(state, component, key, doc)` calls write, off the syntax
    tree: the keys of `doc` when it is a dict literal; when it is built elsewhere (a helper's result, **kwargs), every
    dict key and keyword argument of that module."""
    written: dict[str, set[str]] = {}
    # The landing path writes under its Family's component (shared/land/normalize.py: Family(name, component, ...)).
    families = {call.args[1].value for path in (ROOT / "shared" / "land").rglob("*.py")
                for call in ast.walk(ast.parse(path.read_text())) if isinstance(call, ast.Call)
                and ast.unparse(call.func) == "Family" and len(call.args) > 1 and isinstance(call.args[1], ast.Constant)}
    assert families, "no Family(name, component, ...) found in shared/land"
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
            names = sorted(families) if ast.unparse(component) == "family.component" else [name]
            assert all(isinstance(n, str) for n in names), \
                f"{where}: the component should be a constant or family.component, not {ast.unparse(component)}"
            doc = call.args[3]
            if isinstance(doc, ast.Dict) and None not in doc.keys:
                fields = {key.value for key in doc.keys if isinstance(key, ast.Constant)}
            else:
                fields = {key.value for node in ast.walk(tree) if isinstance(node, ast.Dict) for key in node.keys
                          if isinstance(key, ast.Constant) and isinstance(key.value, str)}
                fields |= {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
                           for kw in node.keywords if kw.arg}
            for name in names:
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
        for field in _fields(query) - HEALTH_COMMON_FIELDS:
            assert field in written[component], \
                f"{rule['name']['value']} reads {field}, which the {component} writer does not write"


@pytest.mark.parametrize("setting, param, rule, field", [
    ("PULL_MAX_LAG_SECONDS", "pullMaxLagSeconds", "pull-lagging", "lag_seconds"),
    ("PULL_MAX_CLOCK_SKEW_SECONDS", "pullMaxClockSkewSeconds", "pull-failing", "clock_skew_seconds"),
])
def test_the_rule_and_the_app_use_one_threshold(setting: str, param: str, rule: str, field: str) -> None:
    # graphlake status and the rule call the same source lagging, or its clock too far ahead of Graph's.
    assert app_settings()[setting]["text"] == f"string({param})"
    (found,) = [r for r in _alert_rules() if r["name"]["value"] == rule]
    assert f"todouble(h.{field}) > ${{{param}}}" in found["query"]["text"]
    # One parameter: in modules, both are given main.bicep's.
    for file in (var_file("appSettings"), var_file("alertRules")):
        assert main_param(file, param) == param, file


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
    groups = resources("Microsoft.Insights/actionGroups")
    assert len(groups) == 1 and groups[0]["condition"] == "(!empty(alertEmail))"
    receivers = groups[0]["body"]["value"]["properties"]["value"]["emailReceivers"]["text"]
    assert "emailAddress: alertEmail" in receivers
    assert main_param(groups[0]["file"], "alertEmail") == "alertEmail"
    (rules,) = resources("Microsoft.Insights/scheduledQueryRules")
    assert rules["loop_over"] == "alertRules"
    props = rules["body"]["value"]["properties"]["value"]
    assert props["scopes"]["text"].split() == ["[", "logAnalytics.id", "]"]
    assert (denotes(rules["file"], "logAnalytics") or {}).get("symbol") == "logAnalytics", "the deployment's workspace"
    assert main_param(rules["file"], "alertEmail") == "alertEmail"
    assert "empty(alertEmail) ? [] :" in props["actions"]["text"]


_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
            "ten": 10, "eleven": 11, "twelve": 12}


def test_readme_counts_and_lists_the_alert_rules() -> None:
    readme = (ROOT / "README.md").read_text()
    names = [r["name"]["value"] for r in _alert_rules()]
    counts = re.findall(r"\b(\w+) (?:log search (?:alert )?rules|rules on graphlake's health)", readme)
    assert counts, "the README should say how many alert rules there are"
    for said in counts:
        assert _NUMBERS.get(said.lower(), int(said) if said.isdigit() else None) == len(names), \
            f"the README says {said} alert rules; alerts.bicep has {len(names)}"
    table = readme.split("### Alert rules", 1)[1].split("\n### ", 1)[0]
    assert re.findall(r"^\| `([\w-]+)` \|", table, re.M) == names, "the README's alert rule table, in order"
