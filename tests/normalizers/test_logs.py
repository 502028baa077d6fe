"""Azure Monitor records (Entra sign-in, audit and risk logs, the Activity log) to rows: golden rows per table, every
category routed, the p_ fields, the row id, and what is not a record.

Golden files: normalizers/golden/logs/<table>.input.json (records as Azure Monitor streams them: Microsoft's
documented shapes, our own values) and <table>.expected.jsonl (one rendered row per record). After a deliberate
change, regenerate with
    PYTHONPATH=. .venv/bin/python tests/normalizers/test_logs.py --regenerate-golden
then read the diff line by line: the expected files are the specification, not a snapshot.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

import normalizers
from normalizers import azure_activity, entra_audit, entra_risk, entra_signin
from normalizers.log_schema import SCHEMA
from normalizers.logs import FAMILIES, NotARecord, normalize_record, row_id

GOLDEN = Path(normalizers.__file__).parent / "golden" / "logs"
PARSE_TIME = datetime(2026, 7, 1, tzinfo=UTC)
TABLES = [family.TABLE for family in FAMILIES]


def inputs(table: str) -> list[dict]:
    return orjson.loads((GOLDEN / f"{table}.input.json").read_bytes())


def normalize(record: object, **kwargs) -> tuple[str, dict]:
    return normalize_record(record, source_id=kwargs.get("source_id"), source_label="Azure Monitor",
                            parse_time=PARSE_TIME)


def render(row: dict) -> dict:
    return {name: (value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(value, datetime) else value)
            for name, value in row.items()}


def test_every_table_has_golden_files_and_they_cover_every_category() -> None:
    assert sorted(p.name.removesuffix(".input.json") for p in GOLDEN.glob("*.input.json")) == sorted(TABLES)
    for family in FAMILIES:
        categories = {record["category"] for record in inputs(family.TABLE)}
        # The legacy log profiles' categories are read too, but no diagnostic setting writes them any more.
        assert categories == set(family.CATEGORIES) - {"Write", "Delete", "Action"}, family.TABLE


@pytest.mark.parametrize("table", TABLES)
def test_golden_rows(table: str) -> None:
    actual = []
    for record in inputs(table):
        routed, row = normalize(record)
        assert routed == table, record["category"]
        actual.append(render(row))
    expected = [orjson.loads(line) for line in (GOLDEN / f"{table}.expected.jsonl").read_bytes().splitlines()]
    assert len(actual) == len(expected)
    problems = [f"row {n} {column}: expected {want.get(column)!r}, actual {got.get(column)!r}"
                for n, (got, want) in enumerate(zip(actual, expected), 1) for column in SCHEMA.names
                if got.get(column) != want.get(column)]
    assert not problems, f"{table}.expected.jsonl differs:\n" + "\n".join(problems)


def test_log_types_are_panthers() -> None:
    assert {family.TABLE: family.LOG_TYPE for family in FAMILIES} == {
        "entra_signin_logs": "Azure.Audit", "entra_audit_logs": "Azure.Audit", "entra_risk_events": "Azure.Audit",
        "azure_activity_logs": "Azure.MonitorActivity"}


def test_sign_in_p_fields() -> None:
    interactive, failed, non_interactive, service_principal, managed_identity = inputs(entra_signin.TABLE)
    _, row = normalize(interactive)
    assert row["p_event_time"] == datetime(2026, 6, 2, 9, 40, 1, 123456, tzinfo=UTC)
    assert row["p_any_ip_addresses"] == ["198.51.100.23"]
    assert row["p_any_usernames"] == row["p_any_emails"] == ["jordan.finance@contoso.com"]
    assert row["p_any_actor_ids"] == ["0b6c1b1e-5d2f-4c2d-9e3f-1a2b3c4d5e6f", "4765445b-32c6-49b0-83e6-1d93765276ca"]
    assert row["p_source_id"] == interactive["tenantId"] and row["level"] == "4"
    # The resource signed in to (Microsoft Graph) is no pivot: every sign-in to Graph would match it.
    assert "00000003-0000-0000-c000-000000000000" not in row["p_any_actor_ids"]
    assert orjson.loads(row["properties"]) == interactive["properties"]
    _, row = normalize(failed)
    # The offset is read, the IPv6 address is canonical, the numeric resultType is text, "4" as sent.
    assert row["p_event_time"] == datetime(2026, 6, 2, 9, 40, 1, 500000, tzinfo=UTC)
    assert row["p_any_ip_addresses"] == ["2001:db8::8:800:200c:417a"]
    assert (row["resultType"], row["level"]) == ("50126", "4")
    _, row = normalize(non_interactive)
    assert "6c1f2e3d-4b5a-4978-8a6b-5c4d3e2f1a0b" in row["p_any_actor_ids"]  # the device
    _, row = normalize(service_principal)
    assert row["p_any_usernames"] is None
    assert row["p_any_actor_ids"] == ["b1c34143-e405-4058-8e29-84596ad737b8", "cfceb902-8fab-4f8c-88ba-374d3c975c3a"]
    _, row = normalize(managed_identity)
    assert row["p_any_ip_addresses"] is None and row["callerIpAddress"] == ""


def test_audit_p_fields_cover_who_did_it_and_to_whom() -> None:
    role_change, credentials = inputs(entra_audit.TABLE)
    _, row = normalize(role_change)
    assert row["p_any_usernames"] == ["it.admin@contoso.com", "jordan.finance@contoso.com"]
    assert row["p_any_ip_addresses"] == ["198.51.100.23"]  # initiatedBy.user.ipAddress; "<null>" is none
    assert set(row["p_any_actor_ids"]) == {"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                                           "0b6c1b1e-5d2f-4c2d-9e3f-1a2b3c4d5e6f",
                                           "62e90394-69f5-4237-9190-012177145e10"}
    assert row["resultType"] is None and row["callerIpAddress"] == "<null>"
    _, row = normalize(credentials)
    assert set(row["p_any_actor_ids"]) == {"1b730954-1685-4b74-9bfd-dac224a7b894",
                                           "4c3b2a19-0f8e-4d7c-9b6a-5f4e3d2c1b0a",
                                           "b1c34143-e405-4058-8e29-84596ad737b8"}
    assert row["durationMs"] == 0  # "0", a string, as some records send it


def test_risk_p_fields() -> None:
    detection, risky_user, risky_sp, sp_detection = inputs(entra_risk.TABLE)
    _, row = normalize(detection)
    assert row["p_any_ip_addresses"] == ["185.220.101.4"]
    # The detection's own id is a hash, not an object id: only the user's id is an actor.
    assert row["p_any_actor_ids"] == ["0b6c1b1e-5d2f-4c2d-9e3f-1a2b3c4d5e6f"]
    _, row = normalize(risky_user)
    assert row["p_any_actor_ids"] == ["0b6c1b1e-5d2f-4c2d-9e3f-1a2b3c4d5e6f"]
    assert row["p_any_usernames"] == ["jordan.finance@contoso.com"]
    # The service principal's object id and app id, from its risk record and from the detection behind it alike.
    service_principal = sorted([risky_sp["properties"]["id"], risky_sp["properties"]["appId"]])
    assert normalize(risky_sp)[1]["p_any_actor_ids"] == normalize(sp_detection)[1]["p_any_actor_ids"] == \
        service_principal


def test_activity_identity_is_an_object_kept_whole_and_read_for_indicators() -> None:
    role_assignment, security, *_ = inputs(azure_activity.TABLE)
    _, row = normalize(role_assignment)
    assert orjson.loads(row["identity"]) == role_assignment["identity"]
    assert row["p_any_usernames"] == ["it.admin@contoso.com"]
    assert row["p_any_ip_addresses"] == ["198.51.100.23"]
    assert set(row["p_any_actor_ids"]) == {"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                                           "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"}
    assert orjson.loads(row["p_unmapped"]) == {"ReleaseVersion": "0.1.2.3"}
    assert row["tenantId"] is None and row["p_source_id"] == ""
    assert normalize(role_assignment, source_id="contoso")[1]["p_source_id"] == "contoso"
    _, row = normalize(security)
    assert row["p_any_ip_addresses"] is None and row["level"] == "Warning"


def test_activity_evidence_principal_id_is_read_as_microsoft_writes_it_without_dashes() -> None:
    # The role came through a group: its object id is in the authorization evidence alone, as 32 hex digits.
    record = inputs(azure_activity.TABLE)[0]
    identity = record["identity"]
    evidence = {**identity["authorization"]["evidence"], "principalType": "Group",
                "principalId": "31C1E1124780483C8E2EC1FDC4258C7E"}
    record = {**record, "identity": {**identity, "authorization": {**identity["authorization"], "evidence": evidence}}}
    _, row = normalize(record)
    assert "31c1e112-4780-483c-8e2e-c1fdc4258c7e" in row["p_any_actor_ids"]


def test_legacy_log_profile_categories_land_in_the_activity_table() -> None:
    record = {**inputs(azure_activity.TABLE)[0], "category": "Write"}
    assert normalize(record)[0] == azure_activity.TABLE


def test_envelope_keys_are_read_whatever_their_case_and_a_second_spelling_is_kept() -> None:
    record = {**inputs(entra_signin.TABLE)[0]}
    record["CallerIpAddress"] = record.pop("callerIpAddress")
    record["Category"] = record.pop("category")
    record["level"] = "Informational"
    _, row = normalize(record)
    assert row["callerIpAddress"] == "198.51.100.23" and row["category"] == "SignInLogs"
    assert row["level"] == "4" and orjson.loads(row["p_unmapped"]) == {"level": "Informational"}


def test_an_unreadable_time_falls_back_to_the_records_own_and_is_kept_in_unmapped() -> None:
    record = {**inputs(entra_signin.TABLE)[0], "time": "yesterday"}
    _, row = normalize(record)
    assert row["p_event_time"] == datetime(2026, 6, 2, 9, 40, 1, 123456, tzinfo=UTC)  # properties.createdDateTime
    assert row["time"] is None and orjson.loads(row["p_unmapped"]) == {"time": "yesterday"}


@pytest.mark.parametrize(("record", "reason"), [
    ([1, 2], "expected a JSON object"),
    ({"time": "2026-06-02T09:40:01Z", "properties": {}}, "has no category"),
    ({"time": "2026-06-02T09:40:01Z", "category": "StorageRead"}, "category 'StorageRead' is not one graphlake lands"),
    ({"time": "soon", "category": "AuditLogs", "properties": {"activityDateTime": "later"}}, "no readable time"),
    ({"category": "AuditLogs", "properties": "not an object"}, "no readable time"),
])
def test_what_is_not_a_record_is_refused_with_the_reason(record: object, reason: str) -> None:
    with pytest.raises(NotARecord, match=reason):
        normalize(record)


def test_row_id_is_the_record_whatever_its_key_order_and_differs_for_any_change() -> None:
    record = inputs(entra_signin.TABLE)[0]
    reordered = dict(reversed(list(record.items())))
    reordered["properties"] = dict(reversed(list(record["properties"].items())))
    assert row_id(record) == row_id(reordered) == normalize(record)[1]["p_row_id"]
    assert row_id({**record, "resultType": "50126"}) != row_id(record)
    # Integers beyond 64 bits (which orjson refuses) still hash.
    assert row_id({**record, "durationMs": 2**70}) != row_id(record)


def regenerate() -> None:
    for table in TABLES:
        rows = [orjson.dumps(render(normalize(record)[1])) for record in inputs(table)]
        (GOLDEN / f"{table}.expected.jsonl").write_bytes(b"\n".join(rows) + b"\n")


if __name__ == "__main__" and "--regenerate-golden" in sys.argv:
    regenerate()
