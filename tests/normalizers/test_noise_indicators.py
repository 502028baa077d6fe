"""Values every machine or every message has stay in the evidence but out of the p_any lists: they would tie each
alert to every other one."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from normalizers import normalize_alert

NOISE_IPS = ["255.255.255.255", "224.0.0.251", "240.0.0.1", "127.0.0.1", "0.0.0.0", "169.254.1.1", "::1"]
PRINCIPALS = [("SYSTEM", "NT AUTHORITY", "S-1-5-18"), ("LOCAL SERVICE", "NT AUTHORITY", "S-1-5-19"),
              ("NETWORK SERVICE", "NT AUTHORITY", "S-1-5-20")]


def alert(evidence: list[dict]) -> dict:
    return {"id": "n-1", "tenantId": "t", "serviceSource": "microsoftDefenderForEndpoint",
            "createdDateTime": "2026-06-01T10:00:00Z", "lastUpdateDateTime": "2026-06-01T10:00:00Z",
            "evidence": evidence}


def rows(value: dict) -> list[dict]:
    return [normalize_alert(orjson.loads(orjson.dumps(value)), source_id=None, source_label="t",
                            parse_time=datetime(2026, 6, 1, tzinfo=UTC))]


@pytest.mark.parametrize("ip", NOISE_IPS)
def test_placeholder_and_local_addresses_are_not_indexed(ip: str) -> None:
    evidence = [{"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "senderIp": ip},
                {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "198.51.100.9"}]
    for row in rows(alert(evidence)):
        assert row["p_any_ip_addresses"] == ["198.51.100.9"]
        assert ip in row["evidence"]


@pytest.mark.parametrize("name, domain, sid", PRINCIPALS)
def test_built_in_windows_principals_are_not_indexed(name: str, domain: str, sid: str) -> None:
    evidence = [{"@odata.type": "#microsoft.graph.security.processEvidence",
                 "userAccount": {"accountName": name, "domainName": domain, "userSid": sid}},
                {"@odata.type": "#microsoft.graph.security.userEvidence",
                 "userAccount": {"accountName": "avery", "domainName": "CONTOSO", "userSid": "S-1-5-21-1-2-3-1104"}}]
    for row in rows(alert(evidence)):
        assert row["p_any_usernames"] == ["avery", "contoso\\avery"]
        assert row["p_any_actor_ids"] == ["S-1-5-21-1-2-3-1104"]
        assert sid in row["evidence"] and name in row["evidence"]
