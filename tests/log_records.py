"""Azure Monitor records for tests and benches: the golden inputs (Microsoft's documented shapes, our values), and
sign-ins made to order."""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson

from tests.conftest import REPO

GOLDEN = REPO / "normalizers" / "golden" / "logs"
TABLES = ("entra_signin_logs", "entra_audit_logs", "entra_risk_events", "azure_activity_logs")


def golden(table: str) -> list[dict]:
    return orjson.loads((GOLDEN / f"{table}.input.json").read_bytes())


def every_category() -> list[dict]:
    return [record for table in TABLES for record in golden(table)]


def body(records: list) -> bytes:
    """An Event Hub event as a diagnostic setting sends it."""
    return orjson.dumps({"records": records})


def signin(moment: datetime, ip: str, upn: str, *, number: int = 0, category: str = "SignInLogs") -> dict:
    """One sign-in record shaped like the golden interactive one, at `moment` from `ip` by `upn`."""
    record = golden("entra_signin_logs")[0]
    request = str(uuid.UUID(int=number + 1))
    time = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    properties = {**record["properties"], "id": request, "correlationId": request, "ipAddress": ip,
                  "userPrincipalName": upn, "createdDateTime": time.replace("Z", "+00:00")}
    return {**record, "time": time, "category": category, "callerIpAddress": ip, "correlationId": request,
            "properties": properties}
