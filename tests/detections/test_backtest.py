"""`graphlake rules backtest` (and its old name, `rules replay`): the rules over the lake print matches and alerts
per rule, and write and send nothing."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from detections.loader import SCHEDULED_RULE, load_rules
from shared.cli import main
from shared.land.normalize import InboundEvent, normalize_events
from shared.core.storage import open_store
from tests.detections.test_alerts import receiver  # noqa: F401 - the fixture

GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"
RAISING = """\
def rule(event):
    if event.get("serviceSource") == "microsoftDefenderForCloudApps":
        raise ValueError("cannot read this one")
    return False
"""


@pytest.mark.parametrize("command", ["backtest", "replay"])
def test_backtest_counts_matches_and_alerts_per_rule_and_changes_nothing(tmp_path, monkeypatch, receiver,  # noqa: F811
                                                                         command):
    identity = orjson.loads((GOLDEN / "identity.input.json").read_bytes())
    pth = identity[0]
    # Three versions of the pass-the-hash alert, all new, in one dedup period: three matches, one alert.
    versions = [pth, {**pth, "lastUpdateDateTime": "2026-06-02T09:45:00Z"},
                {**pth, "lastUpdateDateTime": "2026-06-02T09:50:00Z"}]
    scheduled = [log for rule in load_rules().enabled(SCHEDULED_RULE) for test in rule.tests if test.expected
                 for log in test.log]
    cloud_apps = orjson.loads((GOLDEN / "cloud_apps.input.json").read_bytes())
    lake, state = tmp_path / "lake", tmp_path / "state"
    normalize_events([InboundEvent(orjson.dumps(a)) for a in versions + identity[1:] + scheduled + cloud_apps],
                     lake=open_store(str(lake)), state=open_store(str(state)))
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "raising.py").write_text(RAISING)
    (rules / "raising.yml").write_text("AnalysisType: rule\nFilename: raising.py\nRuleID: Custom.Raising\n"
                                       "LogTypes: [MicrosoftGraph.SecurityAlertV2]\nSeverity: Low\nEnabled: false\n")
    monkeypatch.setenv("RULES_ENABLED", "true")
    monkeypatch.setenv("ALERT_DESTINATIONS", json.dumps([{"type": "webhook", "url": receiver.url}]))

    result = CliRunner().invoke(main, ["rules", command, "--lake", str(lake), "--rules", str(rules),
                                       "--since", "2026-06-01", "--until", "2026-06-10", "--format", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 1  # a rule raised
    by_rule = {r["rule_id"]: r for r in map(orjson.loads, (l for l in result.output.splitlines() if l[:1] == "{"))}
    passthrough = by_rule["Microsoft.Graph.Passthrough"]
    new_ids = {a["id"] for a in versions + identity[1:] + cloud_apps if a["status"] == "new"}
    new_ids |= {a["id"] for a in scheduled if a.get("status") == "new" and a.get("severity") != "informational"}
    assert (passthrough["alerts"], passthrough["matches"]) == (len(new_ids), len(new_ids) + 2), passthrough
    assert by_rule["Graphlake.Correlation.PassTheHashThenEndpoint"]["matches"] == 1
    assert by_rule["Graphlake.Correlation.UserMultiProvider"]["matches"] == 1
    assert by_rule["Graphlake.Honeytoken.Activity"] == {
        "rule_id": "Graphlake.Honeytoken.Activity", "kind": "rule", "enabled": True, "matches": 1, "alerts": 1,
        "errors": 0}
    assert by_rule["Custom.Raising"]["enabled"] is False and by_rule["Custom.Raising"]["errors"] == len(cloud_apps)
    assert "rule Custom.Raising raised on alert" in result.output and "cannot read this one" in result.output
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file() and "rules" not in p.parts) == before
    assert receiver.received == []


def test_replay_is_a_hidden_alias_of_backtest() -> None:
    listed = CliRunner().invoke(main, ["rules", "--help"], catch_exceptions=False).output
    assert "backtest" in listed and "replay" not in listed


@pytest.mark.parametrize("command", ["backtest", "replay"])
def test_backtest_lists_the_alerts_a_rule_would_have_made(tmp_path, command):
    identity = orjson.loads((GOLDEN / "identity.input.json").read_bytes())
    pth = identity[0]
    # Three versions within an hour: one alert; a fourth three hours later opens a second period (DedupPeriod 60).
    later = ["2026-06-02T09:45:00Z", "2026-06-02T09:50:00Z", "2026-06-02T13:00:00Z"]
    versions = [pth] + [{**pth, "lastUpdateDateTime": t, "createdDateTime": t} for t in later]
    lake = tmp_path / "lake"
    normalize_events([InboundEvent(orjson.dumps(a)) for a in versions], lake=open_store(str(lake)),
                     state=open_store(str(tmp_path / "state")))
    args = ["rules", command, "--lake", str(lake), "--since", "2026-06-01", "--until", "2026-06-10", "--alerts"]
    result = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
    by_rule = {r["rule_id"]: r for r in map(orjson.loads, (l for l in result.output.splitlines() if l[:1] == "{"))}
    made = by_rule["Microsoft.Graph.Passthrough"]["alert_list"]
    assert [(a["matches"], a["first_match"][:19], a["last_match"][:19]) for a in made] == [
        (3, "2026-06-02T09:41:12", "2026-06-02T09:50:00"), (1, "2026-06-02T13:00:00", "2026-06-02T13:00:00")]
    assert {a["title"] for a in made} == {f"Microsoft Graph Alert ({pth['title']})"}
    assert len({a["alert_id"] for a in made}) == 2 and by_rule["Microsoft.Graph.Passthrough"]["alerts"] == 2
    table = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert f"Microsoft.Graph.Passthrough  {made[0]['alert_id']}  2026-06-02 09:41:12 .. 2026-06-02 09:50:00  3  " \
           f"Microsoft Graph Alert ({pth['title']})" in table


def test_backtests_last_line_counts_the_rows_of_each_table_it_read(tmp_path):
    # With rules for the log tables, their rows are backtested too: the last line says which tables it read, never
    # that every row was an alert.
    from datetime import UTC, datetime

    from shared.land.normalize import LOGS
    from tests.log_records import body, signin

    alerts = orjson.loads((GOLDEN / "identity.input.json").read_bytes())
    moment = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
    records = [signin(moment, "198.51.100.7", f"user{n}@contoso.com", number=n) for n in range(3)]
    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))
    normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=lake, state=state)
    normalize_events([InboundEvent(body(records))], lake=lake, state=state, family=LOGS)
    rules = Path(__file__).resolve().parent / "fixtures" / "azure_rules"
    result = CliRunner().invoke(main, ["rules", "backtest", "--lake", str(tmp_path / "lake"), "--rules", str(rules),
                                       "--since", "2026-06-01", "--until", "2026-06-10"], catch_exceptions=False)
    assert result.output.strip().splitlines()[-1] == (
        f"{len(alerts) + len(records)} rows backtested (entra_signin_logs {len(records)}, security_alerts "
        f"{len(alerts)}), 2026-06-01 00:00 to 2026-06-10 00:00 UTC; nothing written, no alert sent"), result.output


def test_a_damaged_lake_file_stops_the_backtest_with_the_table_named(tmp_path):
    # Damage DuckDB reads past (the file's footer intact) surfaces while the rows stream.
    from datetime import UTC, datetime

    alerts = orjson.loads((GOLDEN / "identity.input.json").read_bytes())
    lake = tmp_path / "lake"
    # A fixed parse time: the same file bytes every run, so the damage below lands in the same place.
    normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(str(lake)),
                     state=open_store(str(tmp_path / "state")), parse_time=datetime(2026, 6, 3, tzinfo=UTC))
    good = next(lake.rglob("*.parquet"))
    damaged = bytearray(good.read_bytes())
    damaged[104:404] = b"\x07" * 300  # inside the first data pages; the footer (metadata) intact
    good.with_name(f"{good.stem}-z.parquet").write_bytes(bytes(damaged))  # read after the good one
    result = CliRunner().invoke(main, ["rules", "backtest", "--lake", str(lake), "--since", "2026-06-01",
                                       "--until", "2026-06-10"])
    # DuckDB meets the damage while streaming the real-time rules' rows (exit 2, the table named) or, some runs, only
    # in the scheduled rules' queries (each a rule failure, exit 1); never as a bug's "unexpected error" (exit 3).
    assert "unexpected error" not in result.output and result.exit_code in (1, 2), result.output
    if result.exit_code == 2:
        assert result.output.strip().splitlines()[-1].startswith("graphlake: cannot read security_alerts: ")
