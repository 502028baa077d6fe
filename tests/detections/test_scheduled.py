"""Scheduled rules over the lake on Azurite: the pack's correlations find what their tests describe in one lake,
each result row a match in rule_matches and an alert at the destination; a rule runs when its schedule is due, and
a correlation still true on the next run is the same match and the same alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
from click.testing import CliRunner

from detections.destinations import parse_destinations
from detections.loader import LOG_TYPES, SCHEDULED_RULE, load_rules
from detections.matches import TABLE as MATCHES
from detections.realtime import Detector
from detections.scheduled import run_due
from detections.testing import is_log_record
from shared.cli import main
from shared.land.lake_writer import read_table
from shared.land.normalize import LOGS, InboundEvent, normalize_events
from shared.core.storage import open_store
from tests.detections.test_alerts import receiver  # noqa: F401 - the fixture

NOW = datetime(2026, 6, 2, 9, 45, tzinfo=UTC)
EXPECTED = {"Graphlake.Correlation.UserMultiProvider": 1, "Graphlake.Correlation.IpMultiProvider": 1,
            "Graphlake.Correlation.PassTheHashThenEndpoint": 1, "Graphlake.Alert.ReopenedOrEscalated": 2,
            "Graphlake.Correlation.RiskySignInThenAlert": 1, "Graphlake.Correlation.SignInFromAlertIp": 1}


def positive_logs(rule_set) -> list[dict]:
    """The alerts and Azure Monitor records of every positive test of the pack's scheduled rules."""
    return [log for rule in rule_set.enabled(SCHEDULED_RULE) for test in rule.tests if test.expected
            for log in test.log]


def land_positive_logs(rule_set, lake, state) -> None:
    """Every positive test's Logs in one lake: alerts by the alerts' path, records by the logs'."""
    logs = positive_logs(rule_set)
    records = [log for log in logs if is_log_record(log, list(LOG_TYPES))]
    alerts = [log for log in logs if log not in records]
    normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=lake, state=state)
    normalize_events([InboundEvent(orjson.dumps({"records": records}))], lake=lake, state=state, family=LOGS)


def test_scheduled_rules_on_azurite(azurite, receiver):  # noqa: F811
    rule_set = load_rules()
    lake_url, state_url = azurite.container_url(), azurite.container_url()
    lake, state = open_store(lake_url), open_store(state_url)
    land_positive_logs(rule_set, lake, state)
    hooks = json.dumps([{"type": "webhook", "url": receiver.url, "backoff_seconds": 0}])
    detector = Detector(rule_set, tuple(parse_destinations(hooks, {}.get)))

    report = run_due(detector, lake_url, state, lake, NOW)
    assert report.failures == [] and report.matches == EXPECTED
    assert sorted(a["rule_id"] for a in receiver.received) == sorted(
        rule_id for rule_id, n in EXPECTED.items() for _ in range(n))
    pth = next(a for a in receiver.received if a["rule_id"] == "Graphlake.Correlation.PassTheHashThenEndpoint")
    assert pth["alert_context"] == {"pass_the_hash_alert": "p1", "device": "ws-0107", "endpoint_alerts": ["p2"],
                                    "first_endpoint_alert": "2026-06-02 09:40:00.000000000"}
    user = next(a for a in receiver.received if a["rule_id"] == "Graphlake.Correlation.UserMultiProvider")
    assert user["title"] == "jordan.finance@contoso.com in alerts from 3 providers within an hour"
    matches = read_table(lake, MATCHES).to_pylist()
    assert len(matches) == sum(EXPECTED.values())

    # Ten minutes on, nothing is due; an hour on, everything runs and finds the same correlations: no new alert.
    later = run_due(detector, lake_url, state, lake, NOW + timedelta(minutes=10))
    assert later.ran == [] and sorted(later.skipped) == sorted(EXPECTED)
    again = run_due(detector, lake_url, state, lake, NOW + timedelta(minutes=61))
    assert sorted(again.ran) == sorted(EXPECTED)
    assert len(receiver.received) == sum(EXPECTED.values())

    found = CliRunner().invoke(main, ["search", "--lake", lake_url, "--domain", "WS-0107.corp.contoso.com",
                                      "--since", "2026-06-01", "--until", "2026-06-03", "--format", "json"],
                               catch_exceptions=False)
    hits = [orjson.loads(line) for line in found.output.splitlines() if line.startswith("{")]
    assert any(h["table"] == MATCHES for h in hits), found.output


def test_a_scheduled_rule_whose_sql_fails_is_reported_and_the_others_run(tmp_path, receiver):  # noqa: F811
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "broken.sql").write_text("SELECT * FROM no_such_table")
    (folder / "broken.yml").write_text("AnalysisType: scheduled_rule\nRuleID: Custom.Broken\nSeverity: Low\n"
                                       "ScheduleMinutes: 5\nLookbackMinutes: 5\n")
    rule_set = load_rules(folder)
    lake_url, state_url = str(tmp_path / "lake"), str(tmp_path / "state")
    lake, state = open_store(lake_url), open_store(state_url)
    land_positive_logs(rule_set, lake, state)
    report = run_due(Detector(rule_set, ()), lake_url, state, lake, NOW)
    [failure] = report.failures
    assert failure.rule_id == "Custom.Broken" and "no_such_table" in failure.error
    assert report.matches == EXPECTED
    status = CliRunner().invoke(main, ["status", "--state", state_url], catch_exceptions=False)
    assert "LAGGING  detections/scheduled-Custom.Broken: 1 rule errors in the last run, first: rule Custom.Broken " \
           "failed: query failed" in status.output


def test_scheduled_rules_on_an_empty_lake_do_nothing_and_fail_nothing(tmp_path):
    lake_url = str(tmp_path / "lake")
    (tmp_path / "lake").mkdir()
    state = open_store(str(tmp_path / "state"))
    report = run_due(Detector(load_rules(), ()), lake_url, state, open_store(lake_url), NOW)
    assert report.failures == [] and report.ran == [] and report.matches == {}


def test_a_scheduled_rule_raising_on_a_result_row_names_the_row_not_an_alert(tmp_path):
    # A result row of IP addresses is no alert: the failure names the row by its column, and rule_errors' alert
    # context has no Graph alert id made up from the address.
    from detections.rule_errors import error_matches
    from detections.scheduled import evaluate_rows

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "by_ip.sql").write_text("SELECT 1")
    (folder / "by_ip.py").write_text("def rule(event):\n    raise ValueError('no ' + event['ip'])\n")
    (folder / "by_ip.yml").write_text("AnalysisType: scheduled_rule\nRuleID: Custom.ByIp\nFilename: by_ip.py\n"
                                      "Severity: Low\nScheduleMinutes: 5\nLookbackMinutes: 5\n")
    rule = load_rules(folder, with_pack=False).by_id("Custom.ByIp")
    [failure] = evaluate_rows(rule, [{"ip": "198.51.100.7", "providers": 2}]).failures
    assert str(failure) == "rule Custom.ByIp raised on result row ip=198.51.100.7: ValueError: no 198.51.100.7"
    [error] = error_matches([failure], [rule])
    assert error.context["graph_alert_id"] is None
    [failure] = evaluate_rows(rule, [{"id": "a1", "ip": "198.51.100.7"}]).failures
    assert str(failure).startswith("rule Custom.ByIp raised on result row id=a1: ")
