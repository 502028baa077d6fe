"""A panther-analysis-shaped rules folder (tests/detections/fixtures/panther_tree, written for these tests in
Panther's layout): global helpers, other log types passed over, packs, Panther's key schema, InlineFilters, simple
detections, Panther scheduled rules, unit tests in subfolders, and the user's folder over the pack."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from detections.engine import match_row, run_rule
from detections.event import RuleEvent
from detections.loader import PACK_DIR, load_rules
from detections.match_conditions import compile_expressions
from detections.testing import TEST_PARSE_TIME, run_tests
from normalizers import normalize_alert
from shared.cli import main

TREE = Path(__file__).parent / "fixtures" / "panther_tree"
PASSTHROUGH = PACK_DIR / "microsoft_graph" / "microsoft_graph_passthrough.yml"


def rules_test(*args: str):
    return CliRunner().invoke(main, ["rules", "test", *args], catch_exceptions=False)


def test_a_panther_shaped_tree_loads_with_exit_0_and_says_what_it_passed_over():
    result = rules_test("--rules", str(TREE))
    assert result.exit_code == 0, result.output
    assert "0 failed, 0 rules refused" in result.output
    # The helper-importing rule, the simple detection and the scheduled rule ran their own tests.
    for line in ("PASS  Acme.Admin.InAlert: admin in a low alert, kept out by the inline filter",
                 "PASS  Acme.PublicIp.HighAlert: public IP in a high identity alert",
                 "PASS  Acme.Alert.ManyVersions: three versions",
                 "PASS  unit: global_helpers/acme_helpers_test.py: AcmeHelpersTest.test_admin"):
        assert line in result.output
    assert "2 rules for log types graphlake does not hold passed over (by log type or Panther table: " \
           "Okta.SystemLog 1, table okta_systemlog 1)" in result.output
    assert "pack 1" in result.output and "policy 1" in result.output


def test_a_simple_detection_runs_as_its_yaml_says():
    rule = load_rules(TREE, with_pack=False).by_id("Acme.PublicIp.HighAlert")
    row = {"id": "x", "tenantId": "t9", "title": "Pass-the-hash", "severity": "High",
           "serviceSource": "microsoftDefenderForIdentity", "p_any_ip_addresses": ["1.1.1.1"],
           "evidence": '[{"ipAddress": "1.1.1.1"}]'}
    match, _ = match_row(rule, RuleEvent(row), row)
    assert match is not None
    assert (match.title, match.dedup, match.severity, match.context) == (
        "High alert [Pass-the-hash] from microsoftDefenderForIdentity", "microsoftDefenderForIdentity:t9",
        "Critical", {"provider": "microsoftDefenderForIdentity", "first_ip": "1.1.1.1"})
    other = dict(row, serviceSource="microsoftDefenderForEndpoint")
    assert match_row(rule, RuleEvent(other), other)[0].severity == "Medium"  # no DynamicSeverity held: the YAML's
    assert match_row(rule, RuleEvent(dict(row, title="[test] x")), row) == (None, None)  # None: [...]


def test_inline_filters_run_before_rule_and_a_missing_field_passes():
    rule = load_rules(TREE, with_pack=False).by_id("Acme.Admin.InAlert")
    base = {"title": "t", "status": "new", "serviceSource": "x",
            "evidence": '[{"userAccount": {"userPrincipalName": "adm-jo@acme.example"}}]'}
    assert run_rule(rule, RuleEvent(dict(base, severity="high")), batch=True).triggered
    assert not run_rule(rule, RuleEvent(dict(base, severity="low")), batch=True).triggered
    assert not run_rule(rule, RuleEvent(dict(base, severity="high", status="resolved")), batch=True).triggered
    # Panther: a filter on a field the event lacks passes (no severity, no status: rule() decides).
    assert run_rule(rule, RuleEvent({k: v for k, v in base.items() if k != "status"} | {"severity": "high"}), batch=True).triggered


def matching_rule(folder: Path, addition: str) -> None:
    """Rule Custom.R in Panther's layout, whose rule() matches every event, with YAML lines added."""
    (folder / "r.py").write_text("def rule(event):\n    return True\n")
    (folder / "r.yml").write_text(textwrap.dedent("""\
        AnalysisType: rule
        Filename: r.py
        RuleID: Custom.R
        Enabled: true
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: Low
        """) + addition)


# Panther's docs (Inline Filters, "How Inline Filters work"): a filter on a field the event does not contain passes;
# on a field whose value is null it is false for a positive comparator (or one that does not apply) and true for an
# inverse one. Missing and null are two things here; a Detection's conditions fail on both alike.
@pytest.mark.parametrize(("condition", "value", "missing", "null", "detection"), [
    ("Equals", "x", True, False, False),
    ("DoesNotEqual", "x", True, True, True),
    ("IsIn", ["x"], True, False, False),
    ("IsNotIn", ["x"], True, True, True),
    ("Contains", "x", True, False, False),
    ("IDoesNotContain", "x", True, True, True),
    ("StartsWith", "x", True, False, False),
    ("IsGreaterThan", 1, True, False, False),
    ("IsIPAddressInCIDR", "10.0.0.0/8", True, False, False),
    ("IsIPAddressNotInCIDR", "10.0.0.0/8", True, True, True),
    ("IsIPAddressPrivate", None, True, False, False),
    ("IsNull", None, True, True, True),
    ("IsNotNull", None, True, False, False),
    ("IsNullOrEmpty", None, True, True, True),
    ("IsNotNullOrEmpty", None, True, False, False),
])
def test_inline_filters_tell_a_missing_key_from_a_null_value(condition, value, missing, null, detection):
    expression = {"KeyPath": "a.b", "Condition": condition}
    if isinstance(value, list):
        expression["Values"] = value
    elif value is not None:
        expression["Value"] = value
    inline = compile_expressions([expression], "InlineFilters", inline=True)
    assert inline({"a": {}}) is missing and inline({}) is missing  # no b, no a: the filter passes
    assert inline({"a": {"b": None}}) is null
    assert compile_expressions([expression], "Detection")({"a": {"b": None}}) is detection
    assert compile_expressions([expression], "Detection")({"a": {}}) is detection
    # Through [*]: elements without the key are missing, elements holding null are null.
    expression["KeyPath"] = "a[*].b"
    inline = compile_expressions([expression], "InlineFilters", inline=True)
    assert inline({"a": [{}, {}]}) is missing and inline({"a": [{"b": None}, {}]}) is null


def test_an_inline_filter_on_a_null_column_of_a_lake_row_holds_the_rule_back(tmp_path):
    # A Graph alert sends its unset properties as null (classification on a new alert): in the lake that is a null
    # column, the event holds the key with None, and a positive filter on it keeps rule() from running, as Panther
    # does for a null value. A key no row has (a misspelling, a field of another log type) is missing: it passes.
    folder = tmp_path / "rules"
    folder.mkdir()
    matching_rule(folder, textwrap.dedent("""\
        InlineFilters:
          - KeyPath: classification
            Condition: Equals
            Value: truePositive
          - KeyPath: noSuchField
            Condition: Equals
            Value: anything
          - KeyPath: evidence[0].noSuchKey
            Condition: Equals
            Value: anything
        """))
    rule = load_rules(folder, with_pack=False).by_id("Custom.R")
    alert = {"id": "n1", "tenantId": "t", "title": "x", "severity": "high", "status": "new",
             "classification": None, "createdDateTime": "2026-06-02T09:00:00Z",
             "lastUpdateDateTime": "2026-06-02T09:00:00Z",
             "evidence": [{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "203.0.113.9"}]}
    row = normalize_alert(alert, source_id=None, source_label="test", parse_time=TEST_PARSE_TIME)
    assert row["classification"] is None
    assert not run_rule(rule, RuleEvent(row), batch=True).triggered
    classified = normalize_alert(dict(alert, classification="truePositive"), source_id=None, source_label="test",
                                 parse_time=TEST_PARSE_TIME)
    assert run_rule(rule, RuleEvent(classified), batch=True).triggered


@pytest.mark.parametrize(("expressions", "event", "expected"), [
    ([{"Key": "a", "Condition": "Equals", "Value": 5}], {"a": "5"}, True),
    ([{"DeepKey": ["a", "b", 0], "Condition": "StartsWith", "Value": "x"}], {"a": {"b": ["xy"]}}, True),
    ([{"KeyPath": "a[*].ip", "Condition": "IsIPAddressInCIDR", "Value": "10.0.0.0/8"}],
     {"a": [{"ip": "8.8.8.8"}, {"ip": "10.2.3.4"}]}, True),
    ([{"KeyPath": "a[*].ip", "Condition": "IsIPAddressNotInCIDR", "Value": "10.0.0.0/8"}],
     {"a": [{"ip": "8.8.8.8"}, {"ip": "10.2.3.4"}]}, False),
    ([{"KeyPath": "ip", "Condition": "IsIPAddressPrivate"}], {"ip": "192.168.1.1"}, True),
    ([{"KeyPath": "ip", "Condition": "IsIPv6Address"}], {"ip": "192.168.1.1"}, False),
    ([{"KeyPath": "n", "Condition": "IsGreaterThanOrEqual", "Value": 3}], {"n": 3}, True),
    ([{"KeyPath": "missing", "Condition": "Equals", "Value": 1}], {}, False),
    ([{"KeyPath": "missing", "Condition": "DoesNotEqual", "Value": 1}], {}, True),
    ([{"KeyPath": "missing", "Condition": "IsNotIn", "Values": [1]}], {}, True),
    ([{"KeyPath": "s", "Condition": "IsNullOrEmpty"}], {"s": []}, True),
    ([{"KeyPath": "s", "Condition": "Exists"}], {"s": None}, False),
    ([{"Condition": "IsGreaterThan", "Values": [{"KeyPath": "a"}, {"KeyPath": "b"}]}], {"a": 3, "b": 2}, True),
    ([{"KeyPath": "l", "Condition": "AllElements", "Expressions": [{"KeyPath": "v", "Condition": "IsLessThan",
                                                                     "Value": 5}]}], {"l": [{"v": 1}, {"v": 7}]},
     False),
    ([{"KeyPath": "l", "Condition": "OnlyOneElement", "Expressions": [{"KeyPath": "v", "Condition": "IsLessThan",
                                                                        "Value": 5}]}], {"l": [{"v": 1}, {"v": 7}]},
     True),
    ([{"OnlyOne": [{"Condition": "AlwaysTrue"}, {"Condition": "AlwaysTrue"}]}], {}, False),
    ([{"KeyPath": "c", "Condition": "IContains", "Value": "SPRAY"}], {"c": ["password spray"]}, False),
    ([{"KeyPath": "c", "Condition": "IContains", "Value": "SPRAY"}], {"c": "Password Spray"}, True),
    # A list value is in Values when one of its items is (panther-core's `in` operator on a list target).
    ([{"KeyPath": "c", "Condition": "IsIn", "Values": ["b", "z"]}], {"c": ["a", "b"]}, True),
    ([{"KeyPath": "c", "Condition": "IsNotIn", "Values": ["b", "z"]}], {"c": ["a", "b"]}, False),
    ([{"KeyPath": "c", "Condition": "IsNotIn", "Values": ["z"]}], {"c": ["a", "b"]}, True),
])
def test_match_conditions(expressions, event, expected):
    assert compile_expressions(expressions, "Detection")(event) is expected


@pytest.mark.parametrize(("addition", "expected"), [
    ("Threshhold: 5\n", "unknown key 'Threshhold' (did you mean Threshold?)"),
    ("BaseDetection: Other.Rule\n", "key BaseDetection: derived detections"),
    ("OnlyUseBaseRiskScore: true\n", "key OnlyUseBaseRiskScore: graphlake has no risk scores"),
    ("InlineFilters:\n  - KeyPath: severity\n    Condition: Resembles\n    Value: x\n",
     "InlineFilters[0]: unknown Condition 'Resembles'"),
    ("InlineFilters:\n  - KeyPath: evidence\n    Condition: AnyElement\n    Expressions: []\n",
     "InlineFilters[0]: InlineFilters take no list comprehension"),
    ("InlineFilters:\n  - Enrichment: {Table: ipinfo, Selector: ip, FieldPath: asn}\n    Condition: Equals\n"
     "    Value: x\n", "InlineFilters[0]: Enrichment match expressions are not supported"),
    ("Detection:\n  - Condition: AlwaysTrue\n", "give Filename (Python) or Detection (YAML), not both"),
    ("Tests:\n  - Name: t\n    ExpectedResult: true\n    Logg: {}\n", "test 't': unknown key 'Logg'"),
    ("ScheduledQueries: [Query.X]\n", "ScheduledQueries does not go with AnalysisType rule"),
])
def test_every_other_key_is_refused_naming_the_key_and_the_file(tmp_path, addition, expected):
    matching_rule(tmp_path, addition)
    result = rules_test("--rules", str(tmp_path))
    assert result.exit_code == 1
    assert f"rule refused: {tmp_path / 'r.yml'}: {expected}" in result.output


def test_create_alert_summary_attributes_and_output_ids_are_read():
    rule = load_rules(TREE, with_pack=False).by_id("Acme.Admin.InAlert")
    assert rule.summary_attributes == ["title", "serviceSource"] and rule.create_alert is True
    assert rule.output_ids == []


def test_two_rule_sets_in_one_process_each_import_their_own_helpers(tmp_path):
    for name, admin in (("first", "adm-"), ("second", "root-")):
        folder = tmp_path / name
        shutil.copytree(TREE / "global_helpers", folder / "global_helpers")
        shutil.copytree(TREE / "rules" / "graph_rules", folder / "rules")
        helper = folder / "global_helpers" / "acme_helpers.py"
        helper.write_text(helper.read_text().replace('"adm-"', f'"{admin}"'))
    first, second = (load_rules(tmp_path / n, with_pack=False).by_id("Acme.Admin.InAlert") for n in ("first", "second"))
    event = RuleEvent({"severity": "high", "status": "new", "serviceSource": "x",
                       "evidence": '[{"userAccount": {"userPrincipalName": "root-jo@acme.example"}}]'})
    assert not run_rule(first, event, batch=True).triggered and run_rule(second, event, batch=True).triggered
    import sys
    assert "acme_helpers" not in sys.modules  # nothing left behind for the next rule set to pick up


def test_helpers_of_a_folder_reached_through_a_symlink_are_forgotten_too(tmp_path):
    # A rules folder behind a symlink (macOS's /tmp, a mounted share): its helpers are forgotten after loading, so
    # a rule of another set importing a helper its own folder lacks is refused, not handed the stale one.
    shutil.copytree(TREE / "global_helpers", tmp_path / "real" / "global_helpers")
    shutil.copytree(TREE / "rules" / "graph_rules", tmp_path / "real" / "rules")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert load_rules(tmp_path / "link", with_pack=False).by_id("Acme.Admin.InAlert") is not None
    import sys
    assert "acme_helpers" not in sys.modules
    shutil.copytree(TREE / "rules" / "graph_rules", tmp_path / "no_helpers")
    refused = load_rules(tmp_path / "no_helpers", with_pack=False).refused
    assert any("ModuleNotFoundError" in r.reason and "acme_helpers" in r.reason for r in refused), refused


def test_a_failing_unit_test_in_a_subfolder_is_run(tmp_path):
    shutil.copytree(TREE / "global_helpers", tmp_path / "global_helpers")
    test = tmp_path / "global_helpers" / "acme_helpers_test.py"
    test.write_text(test.read_text().replace('assertFalse(acme_helpers.is_acme_admin("jo',
                                             'assertTrue(acme_helpers.is_acme_admin("jo'))
    result = rules_test("--rules", str(tmp_path))
    assert result.exit_code == 1
    assert "FAIL  unit: global_helpers/acme_helpers_test.py: AcmeHelpersTest.test_not_admin" in result.output


def test_a_pack_rule_is_switched_off_by_a_copy_of_its_yaml(tmp_path):
    (tmp_path / "off.yml").write_text(PASSTHROUGH.read_text().replace("Enabled: true", "Enabled: false"))
    rule_set = load_rules(tmp_path)
    assert rule_set.refused == []
    rule = rule_set.by_id("Microsoft.Graph.Passthrough")
    assert rule.enabled is False and rule.path == tmp_path / "off.yml"


def test_a_users_rule_replaces_the_packs_tests_included_and_a_refused_one_takes_it_down(tmp_path):
    shutil.copy(PASSTHROUGH.with_suffix(".py"), tmp_path / "mine.py")
    yml = PASSTHROUGH.read_text().replace("Filename: microsoft_graph_passthrough.py", "Filename: mine.py")
    (tmp_path / "mine.yml").write_text(yml.split("Tests:")[0] + textwrap.dedent("""\
        Tests:
          - Name: my only test
            ExpectedResult: false
            Log: {id: a, tenantId: t, title: x, severity: high, status: resolved,
                  createdDateTime: "2026-06-02T09:00:00Z", lastUpdateDateTime: "2026-06-02T09:00:00Z"}
        """))
    names = [r.name for r in run_tests(load_rules(tmp_path)) if r.rule_id == "Microsoft.Graph.Passthrough"]
    assert names == ["my only test"]

    (tmp_path / "mine.yml").write_text(yml.replace("Severity: Medium", "Severity: Urgent"))
    rule_set = load_rules(tmp_path)
    assert rule_set.by_id("Microsoft.Graph.Passthrough") is None
    assert [r.path for r in rule_set.refused] == [tmp_path / "mine.yml", PASSTHROUGH]
    assert "not loaded either: Microsoft.Graph.Passthrough is replaced by" in rule_set.refused[1].reason


def test_a_panther_scheduled_rule_whose_sql_cannot_run_on_the_lake_is_refused_with_the_reason(tmp_path):
    shutil.copytree(TREE / "queries" / "graph_queries", tmp_path / "queries")
    query = tmp_path / "queries" / "acme_reopened_query.yml"
    query.write_text(query.read_text().replace("SELECT id,", "SELECT id, evidence:ipAddress::string AS ip,"))
    rule_set = load_rules(tmp_path, with_pack=False)
    [refusal] = rule_set.refused
    assert refusal.path.name == "acme_many_versions.yml"
    assert "query 'Query.Acme.ManyVersions' (acme_reopened_query.yml) cannot run on the lake" in refusal.reason


def test_a_panther_scheduled_rule_runs_its_sql_on_the_lake():
    from detections.scheduled import test_matches

    rule = load_rules(TREE, with_pack=False).by_id("Acme.Alert.ManyVersions")
    assert (rule.schedule_minutes, rule.lookback_minutes) == (60, 60) and "security_alerts" in rule.sql
    versions = [{"id": "a1", "tenantId": "t", "title": "x", "severity": "low", "status": "new",
                 "createdDateTime": "2026-06-02T09:00:00Z", "lastUpdateDateTime": f"2026-06-02T09:0{i}:00Z"}
                for i in range(3)]
    [match] = test_matches(rule, versions, None)
    assert match.title == "Alert a1 changed 3 times"
    assert test_matches(rule, versions[:2], None) == []


def test_a_panther_scheduled_rules_one_row_test_gets_panther_analysis_tools_verdict(tmp_path):
    # Its Python runs on the Log as a real-time rule's does in a test: a rule() that raises fails a test expecting
    # no match, and a title() that raises fails one expecting a match (production would hide both).
    shutil.copytree(TREE / "queries" / "graph_queries", tmp_path / "queries")
    python = tmp_path / "queries" / "acme_many_versions.py"
    python.write_text(python.read_text().replace('return event.get("versions", 0) >= 3',
                                                 'return event["versions"] / (event["versions"] - 2) >= 3')
                      .replace('return f"Alert', 'return 1 / 0 or f"Alert'))
    results = {r.name: r for r in run_tests(load_rules(tmp_path, with_pack=False))}
    assert not results["two versions"].passed and "ZeroDivisionError" in results["two versions"].detail
    assert not results["three versions"].passed and "title raised ZeroDivisionError" in results["three versions"].detail


def test_a_second_file_with_the_same_rule_id_is_refused_and_the_first_keeps_its_place(tmp_path):
    for stem in ("a", "b"):
        shutil.copy(PASSTHROUGH.with_suffix(".py"), tmp_path / f"{stem}.py")
        (tmp_path / f"{stem}.yml").write_text(PASSTHROUGH.read_text().replace(
            "Filename: microsoft_graph_passthrough.py", f"Filename: {stem}.py"))
    rule_set = load_rules(tmp_path)
    assert rule_set.by_id("Microsoft.Graph.Passthrough").path == tmp_path / "a.yml"
    [refusal] = rule_set.refused
    assert str(refusal) == f"{tmp_path / 'b.yml'}: RuleID Microsoft.Graph.Passthrough is also in {tmp_path / 'a.yml'}"


def test_a_test_whose_log_graphlake_never_lands_is_not_run_and_one_it_would_quarantine_fails(tmp_path):
    # Panther files storage accounts' resource logs (StorageRead) and EKS audit under log types graphlake holds only
    # partly: such a Log never reaches the rule here, so its test is neither passed nor failed; a record graphlake
    # would quarantine (no category) fails, as it would never become a row either.
    import json

    from tests.log_records import golden as log_golden

    activity = log_golden("azure_activity_logs")[0]
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "ops.py").write_text("def rule(event):\n    return event.get('category') == 'Administrative'\n")
    tests = [
        {"Name": "activity", "ExpectedResult": True, "Log": activity},
        {"Name": "storage", "ExpectedResult": True, "Log": {**activity, "category": "StorageRead"}},
        {"Name": "eks", "ExpectedResult": True, "Log": {"p_log_type": "Amazon.EKS.Audit", "verb": "get"}},
        {"Name": "no category", "ExpectedResult": False,
         "Log": {k: v for k, v in activity.items() if k != "category"}},
    ]
    (folder / "ops.yml").write_text(json.dumps({
        "AnalysisType": "rule", "Filename": "ops.py", "RuleID": "Acme.Ops", "Enabled": True, "Severity": "Low",
        "LogTypes": ["Azure.MonitorActivity", "Amazon.EKS.Audit"], "Tests": tests}))
    result = CliRunner().invoke(main, ["rules", "test", "--rules", str(folder)])
    lines = {line.split("  ")[1]: line for line in result.output.splitlines() if line.startswith(("PASS", "FAIL",
                                                                                                  "SKIP"))}
    assert lines["Acme.Ops: activity"].startswith("PASS")
    assert lines["Acme.Ops: storage"].startswith("SKIP") and "category 'StorageRead'" in lines["Acme.Ops: storage"]
    assert lines["Acme.Ops: eks"].startswith("SKIP") and "Amazon.EKS.Audit" in lines["Acme.Ops: eks"]
    assert lines["Acme.Ops: no category"].startswith("FAIL") and "no category" in lines["Acme.Ops: no category"]
    assert result.exit_code == 1 and "2 tests not run" in result.output.splitlines()[-1]
