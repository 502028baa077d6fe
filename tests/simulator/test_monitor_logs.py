"""simulator/monitor_logs.py: Azure Monitor records in Microsoft's documented shape, packed as Event Hub bodies, and
consistent with the tenant's alerts as Graph serves them (read here from the tenant, not from the generator)."""

from __future__ import annotations

import ipaddress
from functools import cache

import orjson
import pytest
from azure.eventhub import EventData, EventDataBatch

from simulator import Tenant
from simulator.monitor_logs import (ACTIVITY_CATEGORIES, ANONYMOUS_IP_TITLE, DEFENDER_FOR_CLOUD, ENTRA_CATEGORIES,
                                    IDENTITY_PROTECTION, MAX_BODY_BYTES, PASS_THE_HASH_TITLE, ROLE_CHANGE_TITLE,
                                    MonitorLogs, event_hub_bodies, faulty_bodies)
from simulator.timefmt import parse_literal

# Microsoft's Azure Monitor schema pages: the envelope every Entra record carries, and the Activity log's.
ENTRA_ENVELOPE = {"time", "resourceId", "operationName", "operationVersion", "category", "tenantId", "resultType",
                  "resultSignature", "durationMs", "callerIpAddress", "correlationId", "identity", "Level",
                  "properties"}
ACTIVITY_ENVELOPE = {"time", "resourceId", "operationName", "category", "resultType", "resultSignature",
                     "durationMs", "callerIpAddress", "correlationId", "identity", "level", "properties"}
SIGN_IN_PROPERTIES = {"id", "createdDateTime", "userPrincipalName", "userId", "appId", "appDisplayName", "ipAddress",
                      "isInteractive", "status", "riskLevelDuringSignIn", "riskEventTypes_v2", "location",
                      "correlationId", "resourceDisplayName"}
APP_SIGN_IN_PROPERTIES = {"id", "createdDateTime", "appId", "servicePrincipalId", "servicePrincipalName", "ipAddress",
                          "status", "resourceDisplayName"}
AUDIT_PROPERTIES = {"id", "category", "correlationId", "result", "activityDisplayName", "activityDateTime",
                    "loggedByService", "operationType", "initiatedBy", "targetResources"}
RISK_EVENT_PROPERTIES = {"id", "riskEventType", "riskState", "riskLevel", "source", "detectionTimingType",
                         "ipAddress", "activityDateTime", "detectedDateTime", "userId", "userPrincipalName"}
RISKY_USER_PROPERTIES = {"id", "riskLevel", "riskState", "riskDetail", "riskLastUpdatedDateTime",
                         "userPrincipalName", "userDisplayName"}


@cache
def _tenant() -> Tenant:
    # Enough alerts that every template occurs (the catalog's coverage order puts each one early) several times.
    return Tenant(seed=7, alerts=400, days=3)


@cache
def _records() -> tuple[dict, ...]:
    return tuple(MonitorLogs(_tenant(), seed=3).records())


def _alerts(title: str | None = None, source: str | None = None) -> list[dict]:
    tenant = _tenant()
    found = [a for a in tenant.query(top=tenant.alert_count, include_unknown_enum_members=True).alerts
             if (title is None or a["title"] == title) and (source is None or a["serviceSource"] == source)]
    assert found, f"the tenant has no {title or source} alert: the promise would be tested on nothing"
    return found


def _evidence(alert: dict, kind: str) -> list[dict]:
    return [e for e in alert["evidence"] if e["@odata.type"].endswith(kind)]


def _canonical(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _before(record_time: str, alert: dict) -> bool:
    return parse_literal(record_time) < parse_literal(alert["firstActivityDateTime"])


# --- Shape -----------------------------------------------------------------------------------------------------

def test_every_category_is_streamed_in_microsofts_envelope() -> None:
    records = _records()
    assert {r["category"] for r in records} == set(ENTRA_CATEGORIES) | set(ACTIVITY_CATEGORIES)
    tenant = _tenant()
    for record in records:
        parse_literal(record["time"])
        if record["category"] in ENTRA_CATEGORIES:
            assert ENTRA_ENVELOPE <= set(record), (record["category"], ENTRA_ENVELOPE - set(record))
            assert record["resourceId"] == f"/tenants/{tenant.tenant_id}/providers/Microsoft.aadiam"
            assert record["tenantId"] == tenant.tenant_id
        else:
            assert ACTIVITY_ENVELOPE <= set(record), (record["category"], ACTIVITY_ENVELOPE - set(record))
            # The Activity log's resource ids are upper case and its identity an object of claims.
            assert record["resourceId"].startswith("/SUBSCRIPTIONS/") and record["resourceId"].isupper()
            assert {"authorization", "claims"} <= set(record["identity"])
            assert record["properties"]["eventCategory"] == record["category"]


@pytest.mark.parametrize("categories, needed", [
    (("SignInLogs", "NonInteractiveUserSignInLogs"), SIGN_IN_PROPERTIES),
    (("ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs"), APP_SIGN_IN_PROPERTIES),
    (("AuditLogs",), AUDIT_PROPERTIES),
    (("UserRiskEvents",), RISK_EVENT_PROPERTIES),
    (("RiskyUsers",), RISKY_USER_PROPERTIES),
])
def test_entra_properties_carry_the_schema_fields(categories: tuple[str, ...], needed: set[str]) -> None:
    records = [r for r in _records() if r["category"] in categories]
    assert {r["category"] for r in records} == set(categories)
    for record in records:
        assert needed <= set(record["properties"]), (record["category"], needed - set(record["properties"]))


def test_sign_ins_say_whether_they_were_interactive_and_fail_sometimes() -> None:
    sign_ins = [r for r in _records() if r["category"] in ("SignInLogs", "NonInteractiveUserSignInLogs")]
    for record in sign_ins:
        assert record["properties"]["isInteractive"] is (record["category"] == "SignInLogs")
        assert record["properties"]["status"]["errorCode"] == int(record["resultType"])
        assert record["properties"]["ipAddress"] == record["callerIpAddress"]
    assert any(r["resultType"] != "0" for r in sign_ins), "no failed sign-in: rules on failures would see nothing"


# --- Event Hub bodies ----------------------------------------------------------------------------------------------

def test_bodies_hold_every_record_once_one_category_each_under_the_limit() -> None:
    records = _records()
    bodies = list(event_hub_bodies(records))
    seen = []
    for body in bodies:
        assert len(body) <= MAX_BODY_BYTES
        doc = orjson.loads(body)
        assert list(doc) == ["records"] and doc["records"]
        assert len({r["category"] for r in doc["records"]}) == 1
        seen += doc["records"]
    assert sorted(orjson.dumps(r) for r in seen) == sorted(orjson.dumps(r) for r in records)
    # Within a category, the records keep their order.
    for category in {r["category"] for r in records}:
        assert [r for r in seen if r["category"] == category] == [r for r in records if r["category"] == category]


def test_bodies_split_at_the_limit_and_a_large_record_goes_alone() -> None:
    records = [r for r in _records() if r["category"] == "SignInLogs"][:40]
    big = {**records[0], "properties": {**records[0]["properties"], "userAgent": "x" * 5000}}
    bodies = list(event_hub_bodies([*records, big], max_bytes=4000))
    assert len(bodies) > 5
    assert all(len(b) <= 4000 for b in bodies[:-1])
    assert orjson.loads(bodies[-1])["records"] == [big]
    assert sum(len(orjson.loads(b)["records"]) for b in bodies) == 41


def test_bodies_go_through_the_sdks_event_batch() -> None:
    # The seam the demo sends through: each body is one EventData, and fits an Event Hubs Standard batch (1 MB).
    for body in event_hub_bodies(_records()):
        batch = EventDataBatch(max_size_in_bytes=1024 * 1024)
        batch.add(EventData(body))
        assert len(batch) == 1 and batch.size_in_bytes > len(body)


def test_records_are_deterministic_for_a_seed() -> None:
    logs = MonitorLogs(_tenant(), seed=3)
    assert [orjson.dumps(r) for r in logs.records()] == [orjson.dumps(r) for r in _records()]
    assert [orjson.dumps(r) for r in logs.records()] == [orjson.dumps(r) for r in _records()], "a second call differs"
    other = MonitorLogs(_tenant(), seed=4).records()
    assert [orjson.dumps(r) for r in other] != [orjson.dumps(r) for r in _records()]


# --- Consistency with the tenant's alerts ----------------------------------------------------------------------

def _sign_ins(upn: str, address: str) -> list[dict]:
    return [r for r in _records() if r["category"] in ("SignInLogs", "NonInteractiveUserSignInLogs")
            and r["properties"]["userPrincipalName"] == upn and _canonical(r["properties"]["ipAddress"]) ==
            _canonical(address)]


def test_the_anonymous_ip_alerts_address_signs_in() -> None:
    for alert in _alerts(ANONYMOUS_IP_TITLE):
        (user,), (ip,) = _evidence(alert, "userEvidence"), _evidence(alert, "ipEvidence")
        found = _sign_ins(user["userAccount"]["userPrincipalName"], ip["ipAddress"])
        assert found, f"alert {alert['id']}: no sign-in of its user from {ip['ipAddress']}"
        assert any(r["category"] == "SignInLogs" and "anonymizedIPAddress" in r["properties"]["riskEventTypes_v2"]
                   and _before(r["time"], alert) for r in found), alert["id"]


def test_the_pass_the_hash_address_appears_in_sign_ins() -> None:
    for alert in _alerts(PASS_THE_HASH_TITLE):
        users, (ip,) = _evidence(alert, "userEvidence"), _evidence(alert, "ipEvidence")
        found = _sign_ins(users[0]["userAccount"]["userPrincipalName"], ip["ipAddress"])
        assert found and all(_before(r["time"], alert) for r in found), alert["id"]


def test_a_risky_user_has_risk_events() -> None:
    records = _records()
    for alert in _alerts(source=IDENTITY_PROTECTION):
        upn = _evidence(alert, "userEvidence")[0]["userAccount"]["userPrincipalName"]
        (ip,) = _evidence(alert, "ipEvidence")
        risky = [r for r in records if r["category"] == "RiskyUsers" and r["properties"]["userPrincipalName"] == upn]
        events = [r for r in records if r["category"] == "UserRiskEvents"
                  and r["properties"]["userPrincipalName"] == upn
                  and _canonical(r["properties"]["ipAddress"]) == _canonical(ip["ipAddress"])]
        assert risky and all(r["properties"]["riskState"] == "atRisk" for r in risky), alert["id"]
        assert events, f"alert {alert['id']}: {upn} is risky but has no risk event from {ip['ipAddress']}"
        # The risk event points at the sign-in it was detected on.
        sign_in_ids = {r["properties"]["id"] for r in _sign_ins(upn, ip["ipAddress"])}
        assert {e["properties"]["requestId"] for e in events} & sign_in_ids, alert["id"]


def test_an_admin_role_change_precedes_the_defender_alert() -> None:
    audits = [r for r in _records() if r["category"] == "AuditLogs" and r["operationName"] == "Add member to role"]
    for alert in _alerts(ROLE_CHANGE_TITLE):
        assert alert["serviceSource"].startswith("microsoftDefender"), alert["serviceSource"]
        actor, added = (e["userAccount"]["userPrincipalName"] for e in _evidence(alert, "userEvidence"))
        found = [r for r in audits if r["properties"]["initiatedBy"]["user"]["userPrincipalName"] == actor
                 and r["properties"]["targetResources"][0]["userPrincipalName"] == added]
        assert found, f"alert {alert['id']}: no role assignment of {added} by {actor}"
        assert all(_before(r["time"], alert) and r["properties"]["category"] == "RoleManagement" for r in found)
        roles = found[0]["properties"]["targetResources"][0]["modifiedProperties"]
        assert any(p["displayName"] == "Role.DisplayName" and "Administrator" in p["newValue"] for p in roles)


def test_background_traffic_is_not_mistaken_for_the_alerts() -> None:
    # Only the alerts' pivots are risky: a background sign-in never carries risk, so a "risky sign-in" rule run on
    # the stream finds the Identity Protection alerts' users and no one else.
    risky = {r["properties"]["userPrincipalName"] for r in _records()
             if r["category"] == "SignInLogs" and r["properties"]["riskLevelDuringSignIn"] != "none"}
    named = {_evidence(a, "userEvidence")[0]["userAccount"]["userPrincipalName"]
             for a in _alerts(source=IDENTITY_PROTECTION)}
    assert risky == named


def test_a_defender_for_cloud_alert_follows_an_operation_on_its_resource_from_its_address() -> None:
    activity = [r for r in _records() if r["category"] == "Administrative"]
    alerts = [a for a in _alerts(source=DEFENDER_FOR_CLOUD) if _evidence(a, "azureResourceEvidence")
              and _evidence(a, "ipEvidence")]
    assert alerts, "no Defender for Cloud alert on a resource"
    for alert in alerts:
        resource = _evidence(alert, "azureResourceEvidence")[0]["resourceId"]
        (ip,) = _evidence(alert, "ipEvidence")
        found = [r for r in activity if r["resourceId"].lower() == resource.lower()
                 and _canonical(r["callerIpAddress"]) == _canonical(ip["ipAddress"])]
        assert found and all(_before(r["time"], alert) for r in found), alert["id"]
        assert all(r["operationName"].startswith(r["resourceId"].split("/PROVIDERS/")[1].rsplit("/", 1)[0])
                   for r in found)


# --- What real records do, and what a reader must survive -----------------------------------------------------------

def test_quirks_vary_the_form_and_keep_the_instant() -> None:
    records = _records()
    assert any(r["time"].endswith("+00:00") for r in records)
    assert any(isinstance(r["durationMs"], str) for r in records if r["category"] in ENTRA_CATEGORIES)
    assert any(isinstance(r["durationMs"], int) for r in records if r["category"] in ACTIVITY_CATEGORIES)
    assert any(r.get("Level") == "4" for r in records)
    shifted = [r for r in records if r["category"] in ("SignInLogs", "NonInteractiveUserSignInLogs")
               and not r["properties"]["createdDateTime"].endswith("Z")]
    assert shifted
    # A sign-in's createdDateTime is its record's time, whatever the offset either is written in.
    for record in records:
        if record["category"] in ("SignInLogs", "NonInteractiveUserSignInLogs"):
            assert parse_literal(record["properties"]["createdDateTime"]) == parse_literal(record["time"])
    plain = MonitorLogs(_tenant(), seed=3, quirks=False).records()
    assert all(r["time"].endswith("Z") and r.get("Level", 4) == 4 for r in plain)


def test_faulty_bodies_hold_the_good_records_they_claim() -> None:
    records = list(_records()[:2])
    faults = faulty_bodies(records)
    assert len({reason for reason, _, _ in faults}) == len(faults)
    for reason, body, good in faults:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            assert good == 0 and reason.startswith("not JSON")
            continue
        items = doc.get("records") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            assert good == 0, reason
            continue
        assert sum(item in records for item in items) == good == 2, reason
        bad = [item for item in items if item not in records]
        assert len(bad) == 1, reason
        item = bad[0]
        assert (not isinstance(item, dict) or "time" not in item or item["time"] == "yesterday"
                or item.get("category") not in ENTRA_CATEGORIES + ACTIVITY_CATEGORIES), reason
