"""shared.land.normalize.normalize_events: a batch of events to rows, each bad event quarantined with its reason."""

from __future__ import annotations

import json

import orjson

from shared.core.event_format import CLAIM_CHECK_KEY
from shared.land.lake_writer import read_table
from shared.land.normalize import InboundEvent, normalize_events
from shared.core.storage import LocalStore

GOOD = {
    "id": "da000000000000000042_1",
    "tenantId": "5f0e1d2c-3b4a-4968-8776-a5b4c3d2e1f0",
    "serviceSource": "microsoftDefenderForEndpoint",
    "createdDateTime": "2026-06-01T10:00:00.1234567Z",
    "lastUpdateDateTime": "2026-06-01T10:05:00.12Z",
    "evidence": [{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "192.0.2.42"}],
}


def alert(number: int, **overrides: object) -> dict:
    return {**GOOD, "id": f"da0000000000000000{number:02d}_1", **overrides}


def quarantine_errors(state: LocalStore) -> list[str]:
    return sorted(orjson.loads(state.read(name).data)["error"] for name in state.list("quarantine/"))


def test_claim_checks_that_cannot_be_read_are_quarantined_and_the_rest_lands(tmp_path) -> None:
    lake, state = LocalStore(tmp_path / "lake"), LocalStore(tmp_path / "state")
    state.write("claimchecks/good.json", orjson.dumps(alert(1)))
    state.write("claimchecks/corrupt.json", b'{"id": "da1", "evid')
    events = [InboundEvent(orjson.dumps({CLAIM_CHECK_KEY: name}))
              for name in ("claimchecks/good.json", "claimchecks/corrupt.json", "claimchecks/gone.json",
                           "claimchecks/../outside.json", 7)]
    result = normalize_events([*events, InboundEvent(orjson.dumps(alert(2)))], lake=lake, state=state)
    assert result.rows == 2
    assert sorted(read_table(lake, "security_alerts").column("id").to_pylist()) == [alert(1)["id"], alert(2)["id"]]
    errors = quarantine_errors(state)
    assert len(errors) == len(result.quarantined) == 4
    assert "claim check claimchecks/corrupt.json is not JSON" in " | ".join(errors)
    assert "claim check claimchecks/gone.json is missing" in errors
    assert any(error.startswith("claim check pointer: ValueError: invalid blob name 'claimchecks/../outside.json'")
               for error in errors)
    assert "claim check pointer 7 is not a blob name" in errors


def test_an_alert_of_another_shape_keeps_integers_beyond_64_bits_exactly(tmp_path) -> None:
    # An unmapped property sends it down the general path, whose parse must not turn the integer into a float.
    odd = alert(3, newGraphProperty=True, evidence=[{"@odata.type": "#microsoft.graph.security.ipEvidence",
                                                      "ipAddress": "192.0.2.43", "riskScore": 2 ** 70 + 1}])
    lake, state = LocalStore(tmp_path / "lake"), LocalStore(tmp_path / "state")
    result = normalize_events([InboundEvent(json.dumps(odd).encode())], lake=lake, state=state)
    assert result.rows == 1 and not result.quarantined
    [row] = read_table(lake, "security_alerts").to_pylist()
    assert json.loads(row["evidence"])[0]["riskScore"] == 2 ** 70 + 1
    assert json.loads(row["p_unmapped"]) == {"newGraphProperty": True}
    assert row["p_any_ip_addresses"] == ["192.0.2.43"]


def test_a_body_that_is_not_utf_8_is_quarantined_as_not_json(tmp_path) -> None:
    lake, state = LocalStore(tmp_path / "lake"), LocalStore(tmp_path / "state")
    bad = orjson.dumps(alert(4, comments=[{"comment": "café"}])).replace("é".encode(), b"\xe9")
    result = normalize_events([InboundEvent(bad), InboundEvent(orjson.dumps(alert(5)))], lake=lake, state=state)
    assert result.rows == 1
    [error] = quarantine_errors(state)
    assert error.startswith("body is not JSON") and "UTF-8" in error


def test_a_claim_check_pointer_may_only_name_a_blob_under_the_claim_check_prefix(tmp_path) -> None:
    # Anything else in the state container (a watermark, a health record, a quarantined event) is not an alert the
    # pull parked, even when it reads like one: the pointer is refused and the event quarantined with the reason.
    lake, state = LocalStore(tmp_path / "lake"), LocalStore(tmp_path / "state")
    for name in ("watermarks/contoso.json", "health/normalize/0.json", "claimchecksX/a.json"):
        state.write(name, orjson.dumps(alert(6)))
    state.write("claimchecks/contoso/ok.json", orjson.dumps(alert(7)))
    pointers = ["watermarks/contoso.json", "health/normalize/0.json", "claimchecksX/a.json",
                "claimchecks/contoso/ok.json"]
    result = normalize_events([InboundEvent(orjson.dumps({CLAIM_CHECK_KEY: name})) for name in pointers],
                              lake=lake, state=state)
    assert read_table(lake, "security_alerts").column("id").to_pylist() == [alert(7)["id"]]
    assert quarantine_errors(state) == sorted(
        f"claim check pointer {name!r} is not under claimchecks/" for name in pointers[:3])
