"""The outbox: alerts waiting for their destinations, kept in the state store until every destination took them.

`detections/outbox/<alert id>.json` holds the alert and which destinations have it. Each run (a normalize batch,
the scheduled-rules timer) tries what is pending; a destination that still fails after its retries is skipped for
the rest of that run and tried again by the next one, so nothing is dropped and one dead destination costs a run
one retry sequence, not one per alert. Once every destination took an alert, `detections/sent/<alert id>.json`
records it and the outbox entry goes: a redelivered batch never queues it twice.

An entry being sent is claimed (If-Match write of `claimed_until`), so two instances never send it at once; a
claim left by a crashed instance expires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from detections.destinations import DeliveryFailed, Destination, send
from shared.core import health
from shared.core.errors import PreconditionFailed
from shared.core.storage import Store

OUTBOX = "detections/outbox/"
SENT = "detections/sent/"
CLAIM = timedelta(minutes=5)
log = logging.getLogger("graphlake.detections")


@dataclass
class DeliveryReport:
    delivered: int = 0  # alerts every destination took in this run
    undelivered: int = 0  # alerts still waiting for a destination after this run
    errors: list[str] = field(default_factory=list)


def enqueue(state: Store, alert: dict[str, Any]) -> None:
    alert_id = alert["alert_id"]
    if state.read(f"{SENT}{alert_id}.json") is not None:
        return
    doc = {"alert": alert, "delivered": [], "attempts": 0, "last_error": None, "claimed_until": None}
    try:
        state.write(f"{OUTBOX}{alert_id}.json", orjson.dumps(doc, default=str), create_only=True)
    except PreconditionFailed:
        pass  # already waiting


def deliver_pending(state: Store, destinations: list[Destination], now: datetime, *,
                    client: httpx.Client | None = None) -> DeliveryReport:
    report = DeliveryReport()
    names = [n for n in state.list(OUTBOX) if n.endswith(".json")]
    if not names:
        _record(state, report, now)
        return report
    failed: dict[str, str] = {}  # destination -> its error in this run
    own_client = client is None
    client = client or httpx.Client()
    try:
        for name in names:
            if not _deliver_one(state, name, destinations, now, client, failed, report):
                report.undelivered += 1
    finally:
        if own_client:
            client.close()
    report.errors = list(failed.values())
    _record(state, report, now)
    return report


def _deliver_one(state: Store, name: str, destinations: list[Destination], now: datetime, client: httpx.Client,
                 failed: dict[str, str], report: DeliveryReport) -> bool:
    """True when the alert has reached every destination."""
    found = state.read(name)
    if found is None:
        return True  # delivered by another instance meanwhile
    doc = orjson.loads(found.data)
    claimed = doc.get("claimed_until")
    if claimed and datetime.fromisoformat(claimed) > now:
        return False
    doc["claimed_until"] = (now + CLAIM).isoformat()
    try:
        etag = state.write(name, orjson.dumps(doc, default=str), if_match=found.etag)
    except PreconditionFailed:
        return False  # another instance claimed it first
    alert, delivered = doc["alert"], set(doc["delivered"])
    for destination in destinations:
        if destination.name in delivered:
            continue
        if destination.name in failed:
            continue
        try:
            send(destination, alert, client)
        except DeliveryFailed as exc:
            failed[destination.name] = str(exc)
            doc["last_error"] = str(exc)
            log.warning("graphlake.detections alert %s not delivered: %s", alert["alert_id"], exc)
            continue
        delivered.add(destination.name)
    doc["delivered"] = sorted(delivered)
    doc["attempts"] += 1
    doc["claimed_until"] = None
    if all(d.name in delivered for d in destinations):
        state.write(f"{SENT}{alert['alert_id']}.json", orjson.dumps(
            {"alert_id": alert["alert_id"], "rule_id": alert["rule_id"], "delivered": doc["delivered"],
             "sent": now.isoformat()}))
        state.delete(name)
        report.delivered += 1
        return True
    state.write(name, orjson.dumps(doc, default=str), if_match=etag)
    return False


def record_unsendable(state: Store, error: str, now: datetime) -> int:
    """Destinations cannot be used (a bad ALERT_DESTINATIONS): record that, with the alerts waiting; their count."""
    waiting = sum(1 for name in state.list(OUTBOX) if name.endswith(".json"))
    _record(state, DeliveryReport(undelivered=waiting, errors=[error]), now)
    return waiting


def _record(state: Store, report: DeliveryReport, now: datetime) -> None:
    health.record(state, "detections", "delivery", {
        "result": "failing" if report.undelivered else "ok", "undelivered": report.undelivered,
        "delivered": report.delivered, "error": report.errors[0] if report.errors else None,
        "errors": report.errors}, now=now)
