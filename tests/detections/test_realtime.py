"""Rules in real time: the Event Hub function and the CLI evaluate them on every new row through the same code,
matches land in the rule_matches table (searchable), a rule that raises is reported and blocks nothing."""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func
import orjson
import pytest
from azure.functions import meta
from click.testing import CliRunner

import function_app
from detections.matches import TABLE as MATCHES
from normalizers.names import TABLE
from shared.core import health
from shared.cli import main
from shared.land.lake_writer import read_table
from shared.core.storage import open_store

GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"
PASS_THE_HASH = "aa2f1c6b2e-5d4e-4b7a-9c1d-0e2f3a4b5c6d"

RAISING_PY = """\
def rule(event):
    if event.get("id") == "%s":
        raise KeyError("no such field")
    return False
""" % PASS_THE_HASH

RAISING_YML = """\
AnalysisType: rule
Filename: raising.py
RuleID: Custom.Raising
LogTypes: [MicrosoftGraph.SecurityAlertV2]
Severity: Low
"""


def delivery(alerts: list[dict]) -> list[func.EventHubEvent]:
    """One batch as the host hands it over with cardinality=many (metadata shared by the batch's events)."""
    context = {"PartitionContext": meta.Datum(json.dumps({"PartitionId": "0"}), "json"),
               "PropertiesArray": meta.Datum(json.dumps([{}] * len(alerts)), "json")}
    return [func.EventHubEvent(body=orjson.dumps(alert), trigger_metadata=context, sequence_number=i)
            for i, alert in enumerate(alerts)]


def golden(provider: str) -> list[dict]:
    return orjson.loads((GOLDEN / f"{provider}.input.json").read_bytes())


@pytest.fixture
def user_rules(tmp_path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "raising.py").write_text(RAISING_PY)
    (folder / "raising.yml").write_text(RAISING_YML)
    return folder


def matches_in(lake_url: str, rule_id: str = "Microsoft.Graph.Passthrough") -> list[dict]:
    return [m for m in read_table(open_store(lake_url), MATCHES).to_pylist() if m["p_rule_id"] == rule_id]


def new_and_not_informational(alerts: list[dict]) -> set[str]:
    return {a["id"] for a in alerts if a["status"] == "new" and a["severity"] != "informational"}


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_rules_fire_in_the_event_hub_function_path(make_store_url, monkeypatch, user_rules, kind, caplog):
    alerts = golden("identity") + golden("endpoint")
    lake, state = make_store_url(kind), make_store_url(kind)
    for name, value in {"LAKE_URL": lake, "STATE_URL": state, "RULES_ENABLED": "true",
                        "RULES_DIR": str(user_rules)}.items():
        monkeypatch.setenv(name, value)
    function_app.normalize_alerts(delivery(alerts))

    assert sorted(read_table(open_store(lake), TABLE).column("id").to_pylist()) == sorted(a["id"] for a in alerts)
    rows = matches_in(lake)
    assert {r["id"] for r in rows} == new_and_not_informational(alerts)
    honeytoken = matches_in(lake, "Graphlake.Honeytoken.Activity")
    assert [r["id"] for r in honeytoken] == ["aa7d8e9f00-1122-4334-8556-778899aabbcc"]
    by_id = {r["id"]: r for r in rows}
    pth = by_id[PASS_THE_HASH]
    assert pth["title"] == "Microsoft Graph Alert (Suspected identity theft (pass-the-hash))"
    assert pth["p_rule_severity"] == "Medium" and pth["p_alert_severity"] == "High"
    assert pth["p_alert_id"] and pth["dedup"] == PASS_THE_HASH
    assert orjson.loads(pth["p_alert_context"])["provider"] == "microsoftDefenderForIdentity"
    assert "192.0.2.107" in pth["p_any_ip_addresses"]
    # The raising rule is reported with its id, the alert's id and the error; the batch and the pack's rule went on.
    record = health.load(open_store(state), "detections", "realtime")
    assert record["rule_errors"] == 1
    assert record["errors"] == [f"rule Custom.Raising raised on alert {PASS_THE_HASH}: KeyError: 'no such field'"]
    assert any("Custom.Raising" in r.getMessage() and PASS_THE_HASH in r.getMessage() for r in caplog.records)


def test_rules_fire_in_the_cli_path_and_search_covers_rule_matches(tmp_path, user_rules):
    alerts = golden("identity") + golden("cloud_apps")
    source = tmp_path / "alerts.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(a) for a in alerts))
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    runner = CliRunner()
    result = runner.invoke(main, ["normalize", str(source), "--lake", lake, "--state", state,
                                  "--rules", str(user_rules)], catch_exceptions=False)
    # user_rules holds a rule that raises on one alert: the rows land, and the exit code and last line say so.
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == \
        "graphlake: 1 rule error on the rows landed (rule_errors table; rule-error alerts queued)"
    errors = runner.invoke(main, ["query", "--lake", lake, "--format", "json",
                                  "SELECT p_rule_id, id, error_type FROM rule_errors"], catch_exceptions=False)
    assert [orjson.loads(line) for line in errors.output.splitlines() if line.startswith("{")] == [
        {"p_rule_id": "Custom.Raising", "id": PASS_THE_HASH, "error_type": "KeyError"}]
    rows = matches_in(lake)
    assert {r["id"] for r in rows} == new_and_not_informational(alerts)

    found = runner.invoke(main, ["search", "--lake", lake, "--ip", "192.0.2.107", "--since", "2020-01-01",
                                 "--format", "json"], catch_exceptions=False)
    tables = {orjson.loads(line)["table"] for line in found.output.splitlines() if line.startswith("{")}
    assert tables == {TABLE, MATCHES}

    # The same file again (a redelivery): the matches deduplicate, in the table and in the alert counts.
    runner.invoke(main, ["normalize", str(source), "--lake", lake, "--state", state, "--rules", str(user_rules)],
                  catch_exceptions=False)
    count = runner.invoke(main, ["query", "--lake", lake, "--format", "json",
                                 f"SELECT count(*) AS n, count(DISTINCT p_alert_id) AS alerts FROM {MATCHES} "
                                 "WHERE p_rule_id = 'Microsoft.Graph.Passthrough'"],
                          catch_exceptions=False)
    assert orjson.loads(count.output.splitlines()[0]) == {"n": len(rows), "alerts": len(rows)}


def test_without_rules_enabled_nothing_is_evaluated(tmp_path):
    source = tmp_path / "alerts.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(a) for a in golden("identity")))
    lake = str(tmp_path / "lake")
    result = CliRunner().invoke(main, ["normalize", str(source), "--lake", lake, "--state", str(tmp_path / "state")],
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert list(open_store(lake).list(f"{MATCHES}/")) == []


def test_rules_fire_in_graphlake_pull(make_pipeline, user_rules, tmp_path):
    pipe = make_pipeline(alerts=300)
    pull = CliRunner().invoke(main, ["pull", "--once", "--rules", str(user_rules)], env=pipe.env,
                              catch_exceptions=False)
    assert pull.exit_code == 0, pull.output
    lake = pipe.env["LAKE_URL"]
    versions = read_table(open_store(lake), TABLE).to_pylist()
    expected = {(v["id"], v["p_row_id"]) for v in versions if v["status"] == "new" and v["severity"] != "informational"}
    assert expected and {(m["id"], m["p_matched_row_id"]) for m in matches_in(lake)} == expected


@pytest.mark.parametrize("fault, last_line", [
    ("refused", "graphlake: 1 rule of --rules refused, not run (graphlake rules test says why)"),
    ("raising", "graphlake: 5 rule errors on the rows landed (rule_errors table; rule-error alerts queued)"),
])
def test_graphlake_pull_exits_1_when_a_rule_was_refused_or_raised_on_the_rows_it_landed(make_pipeline, user_rules,
                                                                                        fault, last_line):
    # As normalize --rules does: what loaded runs, the rows land, and the exit code and last line say what failed.
    if fault == "refused":
        (user_rules / "typo.yml").write_text(
            RAISING_YML.replace("Custom.Raising", "Custom.Typo").replace("Low", "Urgent"))
    else:
        (user_rules / "raising.py").write_text('def rule(event):\n    raise KeyError("no such field")\n')
    pipe = make_pipeline(alerts=5)
    pull = CliRunner().invoke(main, ["pull", "--once", "--rules", str(user_rules)], env=pipe.env,
                              catch_exceptions=False)
    assert pull.exit_code == 1, pull.output
    assert pull.output.strip().splitlines()[-1] == last_line
    assert matches_in(pipe.env["LAKE_URL"]), "the rules that loaded ran"
    errors = read_table(open_store(pipe.env["LAKE_URL"]), "rule_errors") if fault == "raising" else None
    assert errors is None or len(errors) == 5


def test_the_function_apps_detector_follows_every_setting_it_is_built_from(tmp_path, monkeypatch):
    # The worker keeps its rules between invocations (loading them costs more than a batch); what else the detector
    # holds (destinations, their named settings, landing's delivery budget) follows the settings as they are now.
    from shared.core.settings import load_settings

    hook = json.dumps([{"type": "webhook", "name": "soc", "url_setting": "SOC_HOOK_URL"}])
    for name, value in {"RULES_ENABLED": "true", "RULES_DIR": "", "ALERT_DESTINATIONS": hook,
                        "SOC_HOOK_URL": "http://127.0.0.1:9/one", "ALERT_DELIVERY_BUDGET_SECONDS": "2"}.items():
        monkeypatch.setenv(name, value)
    first = function_app._detector(load_settings())
    assert (first.delivery_budget_seconds, first.destinations[0].url) == (2.0, "http://127.0.0.1:9/one")

    monkeypatch.setenv("ALERT_DELIVERY_BUDGET_SECONDS", "0.5")
    monkeypatch.setenv("SOC_HOOK_URL", "http://127.0.0.1:9/two")
    second = function_app._detector(load_settings())
    assert (second.delivery_budget_seconds, second.destinations[0].url) == (0.5, "http://127.0.0.1:9/two")
    assert second.rules is first.rules  # loaded once

    monkeypatch.setenv("RULES_ENABLED", "false")
    assert function_app._detector(load_settings()) is None


AZURE_RULES = Path(__file__).resolve().parent / "fixtures" / "azure_rules"


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_each_rule_sees_only_rows_of_its_log_types_through_both_event_hub_functions(make_store_url, monkeypatch,
                                                                                     kind):
    # Panther-layout rules of our own, one per table kind: sign-ins and audit records (Azure.Audit), the Activity log
    # (Azure.MonitorActivity), and an alert rule that would raise on any log record (it reads event["status"]).
    # Every row goes to the detector; each rule runs on the rows of its LogTypes only, as in Panther.
    from tests.log_records import body, every_category

    lake, state = make_store_url(kind), make_store_url(kind)
    for name, value in {"LAKE_URL": lake, "STATE_URL": state, "RULES_ENABLED": "true",
                        "RULES_DIR": str(AZURE_RULES)}.items():
        monkeypatch.setenv(name, value)
    records = every_category()
    function_app.normalize_logs([func.EventHubEvent(body=body(records), sequence_number=0)])
    after_logs = health.load(open_store(state), "detections", "realtime")
    assert (after_logs["rows"], after_logs["rule_errors"]) == (len(records), 0), after_logs["errors"]
    function_app.normalize_alerts(delivery(golden("identity")))
    after_alerts = health.load(open_store(state), "detections", "realtime")
    assert after_alerts["rule_errors"] == 0, after_alerts["errors"]
    risky = matches_in(lake, "Contoso.Azure.RiskySignIn")
    assert [(m["p_log_type"], m["title"]) for m in risky] == [
        ("Azure.Audit", "Risky sign-in by alex.wilber@contoso.com from 2001:DB8:0:0:8:800:200C:417A")]
    assert risky[0]["p_any_usernames"] == ["alex.wilber@contoso.com"]
    admin = matches_in(lake, "Contoso.Azure.GlobalAdminAdded")
    assert [m["title"] for m in admin] == ["it.admin@contoso.com made Jordan.Finance@contoso.com a Global Administrator"]
    role = matches_in(lake, "Contoso.Azure.RoleAssignmentWrite")
    assert [(m["p_log_type"], m["title"]) for m in role] == [
        ("Azure.MonitorActivity", "it.admin@contoso.com assigned a role from 198.51.100.23")]
    new = matches_in(lake, "Contoso.Graph.NewAlert")
    assert {m["p_log_type"] for m in new} == {"MicrosoftGraph.SecurityAlertV2"}
    assert {m["id"] for m in new} == {a["id"] for a in golden("identity") if a["status"] == "new"}
    # The log rules never saw an alert: not one of their matches is an alert's row.
    assert all(m["p_log_type"] != "MicrosoftGraph.SecurityAlertV2" for m in risky + admin + role)


# Matches every sign-in but one, on which it raises.
EVERY_SIGNIN_PY = 'def rule(event):\n    return event.get("callerIpAddress") != "203.0.113.250" or 1 / 0\n'
EVERY_SIGNIN_YML = RAISING_YML.replace("raising.py", "every_signin.py").replace("Custom.Raising", "Custom.EverySignIn") \
    .replace("MicrosoftGraph.SecurityAlertV2", "Azure.Audit")


def test_a_log_records_match_and_rule_error_have_an_id_and_search_shows_each_match(tmp_path, monkeypatch):
    # Log records have no Graph alert id; the rule_matches and rule_errors rows still say which record they are (its
    # p_row_id), so a search over rule_matches shows one hit per match, not one per tenant.
    from datetime import UTC, datetime

    from tests.log_records import body, signin

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "every_signin.py").write_text(EVERY_SIGNIN_PY)
    (rules / "every_signin.yml").write_text(EVERY_SIGNIN_YML)
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    for name, value in {"LAKE_URL": lake, "STATE_URL": state, "RULES_ENABLED": "true", "RULES_DIR": str(rules)}.items():
        monkeypatch.setenv(name, value)
    moment = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
    records = [signin(moment, "198.51.100.77", f"user{n}@contoso.com", number=n) for n in range(3)]
    records.append(signin(moment, "203.0.113.250", "user9@contoso.com", number=9))
    function_app.normalize_logs([func.EventHubEvent(body=body(records), sequence_number=0)])

    matches = matches_in(lake, "Custom.EverySignIn")
    assert len(matches) == 3
    assert all(m["id"] == m["p_matched_row_id"] and m["id"] for m in matches)
    errors = read_table(open_store(lake), "rule_errors").to_pylist()
    assert [(e["error_type"], e["id"] == e["p_matched_row_id"] and bool(e["id"])) for e in errors] == [
        ("ZeroDivisionError", True)]

    found = CliRunner().invoke(main, ["search", "--lake", lake, "--ip", "198.51.100.77", "--since", "2026-06-01",
                                      "--until", "2026-06-03", "--format", "json"], catch_exceptions=False)
    hits = [orjson.loads(line) for line in found.output.splitlines() if line.startswith("{")]
    assert sorted(h["id"] for h in hits if h["table"] == MATCHES) == sorted(m["id"] for m in matches)


def test_a_refused_rule_fails_normalize_and_makes_detections_failing_in_status(tmp_path, user_rules):
    # A rule of RULES_DIR that does not load never runs: only a log line said so, normalize exited 0, status said OK.
    (user_rules / "typo.py").write_text("def rule(event):\n    return True\n")
    (user_rules / "typo.yml").write_text(RAISING_YML.replace("raising.py", "typo.py")
                                         .replace("Custom.Raising", "Custom.Typo").replace("Low", "Urgent"))
    source = tmp_path / "alerts.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(a) for a in golden("identity")))
    lake, state = str(tmp_path / "lake"), str(tmp_path / "state")
    runner = CliRunner()
    landed = runner.invoke(main, ["normalize", str(source), "--lake", lake, "--state", state, "--rules",
                                  str(user_rules)], catch_exceptions=False)
    assert landed.exit_code == 1
    assert landed.output.strip().splitlines()[-1] == \
        "graphlake: 1 rule of --rules refused, not run (graphlake rules test says why)"
    status = runner.invoke(main, ["status", "--state", state, "--format", "json"],
                           env={"GRAPH_SOURCES": "", "GRAPH_TENANT_ID": ""})
    findings = {(f["component"], f["key"]): f for f in
                (orjson.loads(line) for line in status.output.splitlines() if line.startswith("{"))}
    realtime = findings["detections", "realtime"]
    assert realtime["state"] == "FAILING", realtime
    assert realtime["reason"].startswith(f"rule refused: {user_rules / 'typo.yml'}: Severity 'Urgent' is not one of")


def test_search_shows_each_rules_match_of_an_alert(tmp_path, user_rules):
    # rule_matches holds versions of alerts, shown one row per alert by default: per rule too, or the matches of two
    # rules on one alert would show as one hit.
    (user_rules / "every.py").write_text("def rule(event):\n    return True\n")
    (user_rules / "every.yml").write_text(RAISING_YML.replace("raising.py", "every.py")
                                          .replace("Custom.Raising", "Custom.Every"))
    alerts = golden("identity")
    source = tmp_path / "alerts.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(a) for a in alerts))
    lake = str(tmp_path / "lake")
    runner = CliRunner()
    runner.invoke(main, ["normalize", str(source), "--lake", lake, "--state", str(tmp_path / "state"),
                         "--rules", str(user_rules)], catch_exceptions=False)
    user = "jordan.finance"
    matched = {(m["p_rule_id"], m["id"]) for m in read_table(open_store(lake), MATCHES).to_pylist()
               if user in (m["p_any_usernames"] or [])}
    assert {rule for rule, _ in matched} == {"Custom.Every", "Microsoft.Graph.Passthrough"}
    found = runner.invoke(main, ["search", "--lake", lake, "--user", user, "--since", "2020-01-01", "--format",
                                 "json"], catch_exceptions=False)
    hits = [orjson.loads(line) for line in found.output.splitlines() if line.startswith("{")]
    assert len([h for h in hits if h["table"] == MATCHES]) == len(matched), hits
