"""The cross-source search: one `graphlake search --ip` finds an address in an alert and in the sign-ins, audit
records and Activity log beside it, grouped by table, each with the SQL that pivots into its rows; the log tables
are views of their own, one row per record."""

from __future__ import annotations

import datetime as dt
import json

import orjson
from click.testing import CliRunner

from shared.cli import main
from shared.core.storage import open_store
from shared.land.normalize import LOGS, InboundEvent, normalize_events
from shared.read.query import connect
from tests.log_records import body, golden, signin

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ATTACKER = "203.0.113.77"


def _alert(ip: str) -> dict:
    created = (NOW - dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"@odata.type": "#microsoft.graph.security.alert", "id": "pth-77", "tenantId": "t",
            "createdDateTime": created, "lastUpdateDateTime": created, "serviceSource": "microsoftDefenderForIdentity",
            "title": "Suspected identity theft (pass-the-hash)", "severity": "high", "status": "new",
            "evidence": [{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": ip}]}


def _recent(record: dict, hours: float) -> dict:
    time = (NOW - dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    return {**record, "time": time}


def _lake(tmp_path) -> str:
    lake, state = open_store(str(tmp_path / "lake")), open_store(str(tmp_path / "state"))
    normalize_events([InboundEvent(orjson.dumps(_alert(ATTACKER)))], lake=lake, state=state)
    sign_ins = [signin(NOW - dt.timedelta(hours=4, minutes=n), ATTACKER, "Jordan.Finance@contoso.com", number=n)
                for n in range(3)]
    sign_ins.append(signin(NOW - dt.timedelta(hours=4), "198.51.100.1", "someone@contoso.com", number=9))
    audit = golden("entra_audit_logs")[0]
    audit = _recent({**audit, "properties": {**audit["properties"], "initiatedBy": {"user": {
        **audit["properties"]["initiatedBy"]["user"], "ipAddress": ATTACKER}}}}, 3)
    activity = golden("azure_activity_logs")[0]
    claims = {**activity["identity"]["claims"], "ipaddr": ATTACKER}
    activity = _recent({**activity, "callerIpAddress": ATTACKER,
                        "identity": {**activity["identity"], "claims": claims}}, 2)
    # The first sign-in delivered twice: one hit still.
    events = [InboundEvent(body([*sign_ins, audit, activity])), InboundEvent(body(sign_ins[:1]))]
    normalize_events(events, lake=lake, state=state, family=LOGS)
    return str(tmp_path / "lake")


def test_one_ip_search_finds_the_alert_and_the_logs_grouped_by_table(tmp_path):
    lake = _lake(tmp_path)
    result = CliRunner().invoke(main, ["search", "--lake", lake, "--ip", ATTACKER, "--format", "json"])
    assert result.exit_code == 0, result.output
    hits = [orjson.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    by_table: dict[str, list[dict]] = {}
    for hit in hits:
        by_table.setdefault(hit["table"], []).append(hit)
    assert {table: len(rows) for table, rows in by_table.items()} == {
        "security_alerts": 1, "entra_signin_logs": 3, "entra_audit_logs": 1, "azure_activity_logs": 1}
    sign_in = by_table["entra_signin_logs"][0]
    assert (sign_in["title"], sign_in["provider"], sign_in["p_log_type"]) == \
        ("Sign-in activity", "SignInLogs", "Azure.Audit")
    assert sign_in["matched"] == f"ip_addresses:{ATTACKER}"
    assert by_table["azure_activity_logs"][0]["p_log_type"] == "Azure.MonitorActivity"


def test_the_table_output_groups_hits_and_each_pivot_returns_its_rows(tmp_path):
    lake = _lake(tmp_path)
    result = CliRunner().invoke(main, ["search", "--lake", lake, "--ip", ATTACKER])
    assert result.exit_code == 0, result.output
    for table in ("security_alerts", "entra_signin_logs", "entra_audit_logs", "azure_activity_logs"):
        assert table in result.output
    from shared.read.search import search, terms_for

    found = search(connect(lake, with_views=False), terms_for({"ip": [ATTACKER]}), NOW - dt.timedelta(days=1),
                   NOW + dt.timedelta(minutes=1))
    connection = connect(lake)
    for hits in found.tables:
        assert len(connection.execute(hits.pivot_sql).fetchall()) == hits.count, hits.table


def test_a_user_search_finds_the_sign_ins_the_audit_record_and_the_risk_events(tmp_path):
    lake = _lake(tmp_path)
    state = open_store(str(tmp_path / "state"))
    risk = [_recent(record, 1) for record in golden("entra_risk_events")[:2]]
    normalize_events([InboundEvent(body(risk))], lake=open_store(lake), state=state, family=LOGS)
    result = CliRunner().invoke(main, ["search", "--lake", lake, "--user", "JORDAN.FINANCE@contoso.com",
                                       "--format", "json"])
    tables = sorted({json.loads(line)["table"] for line in result.output.splitlines() if line.startswith("{")})
    assert tables == ["entra_audit_logs", "entra_risk_events", "entra_signin_logs"]
