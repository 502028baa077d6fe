"""Rules in panther-analysis's format: loading, refusing malformed rules in one line, the user's folder over the
pack, `graphlake rules test`, and the event rules see."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from detections.engine import run_rule
from detections.event import RuleEvent, deep_get, deep_walk
from detections.loader import PACK_DIR, load_rules
from detections.testing import run_tests
from shared.cli import main

PASSTHROUGH = PACK_DIR / "microsoft_graph" / "microsoft_graph_passthrough.yml"

RULE_PY = """\
def rule(event):
    return event.get("severity") == "high"


def title(event):
    return f"High: {event.get('title')}"
"""

RULE_YML = """\
AnalysisType: rule
Filename: {stem}.py
RuleID: {rule_id}
DisplayName: Test rule
Enabled: true
LogTypes: [MicrosoftGraph.SecurityAlertV2]
Severity: High
Tests:
  - Name: high fires
    ExpectedResult: {expected}
    Log:
      id: a1
      title: Something
      severity: high
      status: new
      createdDateTime: "2026-06-02T09:41:12Z"
      lastUpdateDateTime: "2026-06-02T09:41:12Z"
"""


def write_rule(folder: Path, stem: str = "my_rule", rule_id: str = "Custom.Rule", expected: str = "true",
               py: str | None = RULE_PY, yml: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if py is not None:
        (folder / f"{stem}.py").write_text(py)
    path = folder / f"{stem}.yml"
    path.write_text(yml if yml is not None else RULE_YML.format(stem=stem, rule_id=rule_id, expected=expected))
    return path


def rules_test(*args: str):
    return CliRunner().invoke(main, ["rules", "test", *args], catch_exceptions=False)


def test_the_starter_pack_loads_and_its_tests_pass():
    rule_set = load_rules()
    assert rule_set.refused == []
    assert rule_set.by_id("Microsoft.Graph.Passthrough") is not None
    results = run_tests(rule_set)
    assert results and all(r.passed for r in results), [r.line() for r in results if not r.passed]
    for rule in rule_set.rules:
        expected = {t.expected for t in rule.tests}
        assert expected == {True, False}, f"{rule.rule_id} needs a positive and a negative test"


def test_rules_test_passes_and_a_wrong_expectation_fails(tmp_path):
    write_rule(tmp_path / "good")
    result = rules_test("--rules", str(tmp_path / "good"))
    assert result.exit_code == 0, result.output
    assert "PASS  Custom.Rule: high fires  (expected True, got True)" in result.output

    write_rule(tmp_path / "wrong", expected="false")
    result = rules_test("--rules", str(tmp_path / "wrong"))
    assert result.exit_code == 1
    assert "FAIL  Custom.Rule: high fires  (expected False, got True)" in result.output
    assert "1 failed" in result.output


def test_a_rule_whose_title_raises_on_a_match_fails_its_test(tmp_path):
    write_rule(tmp_path, py=RULE_PY.replace("return f\"High: {event.get('title')}\"", "return 1 / 0"))
    [result] = [r for r in run_tests(load_rules(tmp_path, with_pack=False))]
    assert not result.passed and "ZeroDivisionError" in result.detail


@pytest.mark.parametrize(("case", "expected"), [
    ("bad_yaml", "bad YAML"),
    ("no_rule_function", "defines no rule(event) function"),
    ("legacy_log_type", "LogType MicrosoftGraph.SecurityAlert is the legacy /security/alerts schema"),
    ("missing_file", "Filename missing.py does not exist beside the YAML"),
    ("import_error", "fails to import: ModuleNotFoundError"),
    ("bad_severity", "Severity 'Urgent' is not one of"),
    ("bad_threshold", "Threshold must be a whole number of at least 1"),
])
def test_a_malformed_rule_is_refused_in_one_line(tmp_path, case, expected):
    good = RULE_YML.format(stem="r", rule_id="Custom.Rule", expected="true")
    py = RULE_PY
    yml = {
        "bad_yaml": good + "  - Name: [unclosed\n",
        "no_rule_function": good,
        "legacy_log_type": good.replace("MicrosoftGraph.SecurityAlertV2", "MicrosoftGraph.SecurityAlert"),
        "missing_file": good.replace("Filename: r.py", "Filename: missing.py"),
        "import_error": good,
        "bad_severity": good.replace("Severity: High", "Severity: Urgent"),
        "bad_threshold": good + "Threshold: 0\n",
    }[case]
    if case == "no_rule_function":
        py = "def title(event):\n    return 'x'\n"
    if case == "import_error":
        py = "import not_a_module_anywhere\n" + RULE_PY
    write_rule(tmp_path, stem="r", py=py, yml=yml)
    write_rule(tmp_path, stem="other", rule_id="Custom.Other")
    rule_set = load_rules(tmp_path, with_pack=False)
    assert [r.rule_id for r in rule_set.rules] == ["Custom.Other"], "the other rules still load"
    [refusal] = rule_set.refused
    assert refusal.path.name == "r.yml" and expected in refusal.reason and "\n" not in str(refusal)


def test_rules_test_fails_on_a_refused_rule_and_names_it(tmp_path):
    write_rule(tmp_path, stem="r", py="def title(event):\n    return 'x'\n")
    result = rules_test("--rules", str(tmp_path))
    assert result.exit_code == 1
    assert f"rule refused: {tmp_path / 'r.yml'}: r.py defines no rule(event) function" in result.output
    assert "0 failed, 1 rules refused" in result.output


def test_a_user_rule_with_the_packs_id_wins(tmp_path):
    shutil.copy(PASSTHROUGH.with_suffix(".py"), tmp_path / "mine.py")
    yml = PASSTHROUGH.read_text().replace("Filename: microsoft_graph_passthrough.py", "Filename: mine.py")
    (tmp_path / "mine.yml").write_text(yml.replace("Severity: Medium", "Severity: Critical"))
    rule_set = load_rules(tmp_path)
    [rule] = [r for r in rule_set.rules if r.rule_id == "Microsoft.Graph.Passthrough"]
    assert rule.severity == "Critical" and rule.path == tmp_path / "mine.yml"


def test_rules_test_reads_rules_dir_from_the_setting(tmp_path, monkeypatch):
    write_rule(tmp_path, expected="false")
    monkeypatch.setenv("RULES_DIR", str(tmp_path))
    assert rules_test().exit_code == 1


def test_the_event_parses_json_columns_and_deep_gets():
    evidence = [{"userAccount": {"userPrincipalName": "a@x.com"}}, {"userAccount": {"userPrincipalName": "b@x.com"}},
                {"ipAddress": "1.2.3.4"}]
    row = {"id": "a", "severity": None, "evidence": json.dumps(evidence),
           "customDetails": '{"SourceIP": ["10.0.0.1"]}', "p_unmapped": None}
    event = RuleEvent(row)
    assert event["evidence"][2] == {"ipAddress": "1.2.3.4"}
    assert event.deep_get("customDetails", "SourceIP") == ["10.0.0.1"]
    assert event.deep_get("severity", default="unknown") == "unknown"
    assert event.deep_get("customDetails", "missing", "deeper", default=0) == 0
    assert deep_walk(event, "evidence", "userAccount", "userPrincipalName") == ["a@x.com", "b@x.com"]
    assert event.deep_walk("evidence", "ipAddress") == "1.2.3.4"
    assert deep_get({"a": {"b": 1}}, "a", "b") == 1
    assert dict(event)["p_unmapped"] is None and set(event) == set(row)


def test_a_rule_is_loaded_with_every_documented_field(tmp_path):
    yml = textwrap.dedent("""\
        AnalysisType: rule
        Filename: r.py
        RuleID: Custom.Full
        DisplayName: Full rule
        Enabled: false
        LogTypes: [MicrosoftGraph.SecurityAlertV2]
        Severity: Low
        DedupPeriodMinutes: 15
        Threshold: 3
        Description: d
        Reports: {MITRE ATT&CK: [TA0006:T1110]}
        Runbook: rb
        Reference: https://example.org
        Tags: [a, b]
        Tests: []
        """)
    write_rule(tmp_path, stem="r", yml=yml)
    rule = load_rules(tmp_path, with_pack=False).by_id("Custom.Full")
    assert (rule.enabled, rule.severity, rule.dedup_minutes, rule.threshold, rule.reports, rule.tags,
            rule.description, rule.runbook, rule.reference) == \
        (False, "Low", 15, 3, {"MITRE ATT&CK": ["TA0006:T1110"]}, ["a", "b"], "d", "rb", "https://example.org")


def test_other_analysis_types_and_hidden_folders_are_passed_over(tmp_path):
    write_rule(tmp_path)
    (tmp_path / "policy.yml").write_text("AnalysisType: policy\nPolicyID: AWS.S3.Public\n")
    (tmp_path / "data_models").mkdir()
    (tmp_path / "data_models" / "dm.yml").write_text("AnalysisType: datamodel\n")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    rule_set = load_rules(tmp_path, with_pack=False)
    assert [r.rule_id for r in rule_set.rules] == ["Custom.Rule"] and rule_set.refused == []
    assert rule_set.passed_over == {"policy": 1, "datamodel": 1}
    result = rules_test("--rules", str(tmp_path))
    assert result.exit_code == 0 and "passed over (datamodel 1, policy 1)" in result.output


def test_a_relative_rules_dir_is_found_from_the_app_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the app's folder, as a Functions worker may start elsewhere
    rule_set = load_rules("detections/rules", with_pack=False)
    assert rule_set.refused == [] and rule_set.by_id("Microsoft.Graph.Passthrough") is not None


def test_rule_level_unit_tests_run_too(tmp_path):
    write_rule(tmp_path)
    (tmp_path / "helpers_test.py").write_text(textwrap.dedent("""\
        import unittest
        from my_rule import rule

        class RuleTest(unittest.TestCase):
            def test_high(self):
                self.assertTrue(rule({"severity": "high"}))

            def test_wrong(self):
                self.assertTrue(rule({"severity": "low"}), "low is not high")
        """))
    result = rules_test("--rules", str(tmp_path))
    assert result.exit_code == 1
    assert "PASS  unit: helpers_test.py: RuleTest.test_high  (passed)" in result.output
    assert "FAIL  unit: helpers_test.py: RuleTest.test_wrong  (AssertionError: False is not true : low is not high)" \
        in result.output


def test_each_rule_set_reads_the_lookup_tables_of_its_own_folders(tmp_path):
    # Two folders with a VIP list each, loaded one after the other, as a worker and a backtest might: each rule set's
    # rules see their own folder's list (and the pack's), never the one loaded last.
    vip_row = {"p_any_usernames": ["alice@contoso.com"], "severity": "high"}
    sets = {}
    for name, vips in (("first", "user\nalice@contoso.com\n"), ("second", "user\nbob@contoso.com\n")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "vip_users.csv").write_text(vips)
        sets[name] = load_rules(folder)
    matched = {name: run_rule(sets[name].by_id("Graphlake.VIP.UserAlert"), RuleEvent(vip_row), batch=True).triggered for name in sets}
    assert matched == {"first": True, "second": False}
    assert load_rules(tmp_path / "first").lookups.values("vip_users.csv", "user") >= {"alice@contoso.com"}


def test_a_rule_calling_sys_exit_is_its_own_failure_never_a_silent_exit_0(tmp_path):
    # Panther's engine catches whatever rule() raises, SystemExit included; graphlake let it end the command, with
    # exit 0 and nothing said: rows landed, no rule ran after it, `rules test` reported nothing.
    golden = Path(__file__).resolve().parents[2] / "normalizers" / "golden" / "identity.input.json"
    source = tmp_path / "alerts.jsonl"
    source.write_text("\n".join(json.dumps(a) for a in json.loads(golden.read_text())))
    exits_at_match = RULE_PY.replace("return f\"High: {event.get('title')}\"", "raise SystemExit(0)")
    write_rule(tmp_path / "in_rule", py="import sys\n\n\ndef rule(event):\n    sys.exit()\n")
    write_rule(tmp_path / "in_title", py=exits_at_match)
    write_rule(tmp_path / "at_import", py="import sys\nsys.exit(0)\n" + RULE_PY)
    write_rule(tmp_path / "unit", py=RULE_PY)
    (tmp_path / "unit" / "exit_test.py").write_text("import sys\nsys.exit(0)\n")

    runner = CliRunner()
    landed = runner.invoke(main, ["normalize", str(source), "--lake", str(tmp_path / "lake"), "--state",
                                  str(tmp_path / "state"), "--rules", str(tmp_path / "in_rule")])
    assert landed.exit_code == 1, landed.output
    assert "rule errors on the rows landed" in landed.output.strip().splitlines()[-1]
    assert "rule Custom.Rule raised on alert" in landed.output and "SystemExit" in landed.output

    # What `rules test` prints and exits 1 on: a failed test, a refused rule.
    sets = {folder: load_rules(tmp_path / folder, with_pack=False) for folder in ("in_title", "at_import", "unit")}
    lines = {folder: [r.line() for r in run_tests(rule_set)] for folder, rule_set in sets.items()}
    assert [line.split("  (")[0] for line in lines["in_title"]] == ["FAIL  Custom.Rule: high fires"]
    assert "title raised SystemExit" in lines["in_title"][0]
    [refusal] = sets["at_import"].refused
    assert "my_rule.py fails to import: SystemExit" in refusal.reason
    assert any(line.startswith("FAIL  unit: exit_test.py  (cannot import: SystemExit") for line in lines["unit"])
