"""The starter pack's correlations across the alerts and the logs beside them, on a lake the simulated tenant's
alerts and its Azure Monitor records (consistent with those alerts) were landed in by the normalizers: the rows each
rule returns are exactly the ones worked out here from the records and the alerts themselves."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from functools import cache

import orjson
import pytest

from detections.loader import load_rules
from detections.scheduled import run_query, with_empty_tables
from shared.core.storage import LocalStore, open_store
from shared.core.timestamps import parse_graph_time
from shared.land.lake_writer import read_table
from shared.land.normalize import LOGS, InboundEvent, normalize_events
from shared.read.query import connect
from simulator import Tenant
from simulator.monitor_logs import MonitorLogs, event_hub_bodies

RISKY = "Graphlake.Correlation.RiskySignInThenAlert"
ALERT_IP = "Graphlake.Correlation.SignInFromAlertIp"
SIGN_INS = ("SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs")


@cache
def _tenant() -> Tenant:
    return Tenant(seed=5, alerts=160, days=2)


@cache
def _records() -> tuple[dict, ...]:
    return tuple(MonitorLogs(_tenant(), seed=4, days=2).records())


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("correlations")
    lake, state = LocalStore(str(root / "lake")), LocalStore(str(root / "state"))
    tenant = _tenant()
    alerts = tenant.query(top=tenant.alert_count, include_unknown_enum_members=True).alerts
    landed = normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=lake, state=state)
    assert not landed.quarantined and landed.rows == len(alerts)
    logs = normalize_events([InboundEvent(b) for b in event_hub_bodies(_records())], lake=lake, state=state,
                            family=LOGS)
    assert not logs.quarantined
    return lake.url


def _rows(lake: str, rule_id: str) -> list[dict]:
    [rule] = [r for r in load_rules(None).rules if r.rule_id == rule_id]
    return run_query(rule, with_empty_tables(connect(lake)), datetime(2000, 1, 1), datetime(2100, 1, 1))


def _alerts(lake: str) -> list[dict]:
    return [a for a in read_table(open_store(lake), "security_alerts").to_pylist()
            if a["severity"] != "informational"]


def _props(record: dict) -> dict:
    """A record's properties by lower-case key (the simulator varies the case of some keys, as archives do)."""
    return {k.lower(): v for k, v in (record.get("properties") or {}).items()}


def _canonical_ip(text) -> str | None:
    """An address as the lake's p_any_ip_addresses holds it (IPv6 compressed and lower-case)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _value(record: dict, key: str):
    return next((v for k, v in record.items() if k.lower() == key), None)


def test_risky_sign_in_then_an_alert_on_the_user(lake):
    risks: dict[str, list[datetime]] = {}
    for r in _records():
        p = _props(r)
        risky_sign_in = _value(r, "category") in SIGN_INS and (
            str(p.get("riskLevelDuringSignIn".lower(), "")).lower() in ("medium", "high")
            or str(p.get("riskstate", "")).lower() in ("atrisk", "confirmedcompromised"))
        if (risky_sign_in or _value(r, "category") == "UserRiskEvents") and p.get("userprincipalname"):
            risks.setdefault(p["userprincipalname"].lower(), []).append(parse_graph_time(_value(r, "time")))
    expected = set()
    for alert in _alerts(lake):
        for upn in alert["p_any_usernames"] or []:
            if any(t <= alert["p_event_time"] < t + timedelta(hours=4) for t in risks.get(upn, [])):
                expected.add((upn, alert["id"]))
    got = {(row["user"], row["id"]) for row in _rows(lake, RISKY)}
    assert expected, "the simulated tenant has no risky sign-in before an alert: the rule would be tested on nothing"
    assert got == expected


def test_a_sign_in_from_an_address_an_alert_names(lake):
    alert_ips = {ip for a in _alerts(lake) for ip in a["p_any_ip_addresses"] or []}
    expected = set()
    for r in _records():
        p = _props(r)
        ip = _canonical_ip(p.get("ipaddress"))
        if _value(r, "category") in SIGN_INS and ip in alert_ips:
            expected.add((ip, (p.get("userprincipalname") or p.get("serviceprincipalname") or "").lower()))
    got = {(row["ip"], row["user"].lower()) for row in _rows(lake, ALERT_IP)}
    assert expected, "no sign-in from an alert's address: the rule would be tested on nothing"
    assert got == expected
