"""The outbox: alerts waiting for their destinations, kept in the state store until every destination took them.

`detections/outbox/<alert id>.json` holds one alert and which destinations have it: queueing an alert writes its own
blob, never the others'. Once every destination took an alert, `detections/sent/<alert id>.json` records it and the
outbox entry goes: a redelivered batch never queues it twice.

Two kinds of run send:
- landing (`deliver_new`, a normalize batch) tries only the alerts it just queued, within a time budget
  (ALERT_DELIVERY_BUDGET_SECONDS), and not a destination whose breaker is open: one that failed in the last
  COOLDOWN. A dead or hanging destination so costs landing one budget, then nothing until the timer finds it well.
- the run_scheduled_rules timer (`deliver_pending`) drains the whole outbox, with every destination's full retries;
  it opens the breaker of a destination that still fails and closes it once one takes its alerts. A destination
  that failed in a run is not tried again in that run, and an entry whose destinations all failed is passed over
  without a read or a write.

An entry being sent is claimed (If-Match write of `claimed_until`), so two instances never send it at once; a
claim left by a crashed instance expires.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from detections.destinations import DeliveryFailed, Destination, route, send
from shared.core import health
from shared.core.errors import PreconditionFailed
from shared.core.storage import Store

OUTBOX = "detections/outbox/"
SENT = "detections/sent/"
BREAKERS = "detections/breakers/"
CLAIM = timedelta(minutes=5)
# As long as the timer's default schedule: while it is open, the timer is the one trying the destination.
COOLDOWN = timedelta(minutes=5)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
log = logging.getLogger("graphlake.detections")


@dataclass
class DeliveryReport:
    delivered: int = 0  # alerts every destination took in this run
    undelivered: int = 0  # alerts still waiting for a destination after this run
    errors: list[str] = field(default_factory=list)


def enqueue(state: Store, alert: dict[str, Any]) -> bool:
    """Queue the alert (one blob of its own); False when every destination already took it."""
    alert_id = alert["alert_id"]
    if state.read(f"{SENT}{alert_id}.json") is not None:
        return False
    doc = {"alert": alert, "delivered": [], "attempts": 0, "last_error": None, "claimed_until": None}
    try:
        state.write(f"{OUTBOX}{alert_id}.json", orjson.dumps(doc, default=str), create_only=True)
    except PreconditionFailed:
        pass  # already waiting
    return True


def deliver_new(state: Store, destinations: list[Destination], alert_ids: Iterable[str], now: datetime, *,
                budget_seconds: float, client: httpx.Client | None = None) -> DeliveryReport:
    """Landing's try: the alerts this batch queued, within `budget_seconds` in all, to the destinations whose
    breaker is closed. What it leaves waits for the timer; the delivery health record counts it."""
    report = DeliveryReport()
    alert_ids = list(alert_ids)
    if not alert_ids or not destinations:
        return report
    deadline = time.monotonic() + budget_seconds
    failed = _open_breakers(state, destinations, now)
    already_open = set(failed)
    own_client = client is None
    client = client or httpx.Client()
    try:
        for alert_id in alert_ids:
            if not _deliver_one(state, f"{OUTBOX}{alert_id}.json", destinations, now, client, failed, report,
                                deadline):
                report.undelivered += 1
    finally:
        if own_client:
            client.close()
    for name in failed.keys() - already_open:
        _trip(state, name, failed[name], now)
    report.errors = list(failed.values()) + report.errors
    if report.undelivered:
        # Counted onto what the last run left: landing never lists the outbox. The timer's next run counts it exactly.
        before = health.previous(state, "detections", "delivery")
        _record(state, DeliveryReport(report.delivered, int(before.get("undelivered") or 0) + report.undelivered,
                                      report.errors or [f"no time left in landing's {budget_seconds:g} s"]), now)
    return report


def deliver_pending(state: Store, destinations: list[Destination], now: datetime, *,
                    client: httpx.Client | None = None) -> DeliveryReport:
    """The timer's drain: every alert waiting, every destination, whatever its breaker says."""
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
            if not _deliver_one(state, name, destinations, now, client, failed, report, None):
                report.undelivered += 1
    finally:
        if own_client:
            client.close()
    for destination in destinations:
        if destination.name in failed:
            _trip(state, destination.name, failed[destination.name], now)
        else:
            _reset(state, destination.name)
    report.errors = list(failed.values()) + report.errors
    _record(state, report, now)
    return report


def _deliver_one(state: Store, name: str, destinations: list[Destination], now: datetime, client: httpx.Client,
                 failed: dict[str, str], report: DeliveryReport, deadline: float | None) -> bool:
    """True when the alert has reached every destination."""
    if all(d.name in failed for d in destinations) or _out_of_time(deadline):
        return False  # nothing this run can send: no read, no claim
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
    # The rule's choice of destinations (destinations(), OutputIds), resolved against those configured now, so an
    # alert queued while ALERT_DESTINATIONS was broken goes where the rule says once it is fixed.
    routed, problems = route(alert, destinations)
    for problem in problems:
        if problem not in report.errors:
            log.error("graphlake.detections %s", problem)
            report.errors.append(problem)
    destinations = [d for d in destinations if routed is None or d.name in routed]
    if not destinations:
        doc["claimed_until"], doc["last_error"] = None, problems[-1] if problems else "no destination"
        state.write(name, orjson.dumps(doc, default=str), if_match=etag)
        return False  # waits, and the delivery health record says why, until OutputIds or ALERT_DESTINATIONS change
    for destination in destinations:
        if destination.name in delivered or destination.name in failed or _out_of_time(deadline):
            continue
        try:
            send(destination, alert, client, deadline=deadline)
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


def _out_of_time(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _breaker_name(destination: str) -> str:
    return f"{BREAKERS}{_SAFE.sub('_', destination)}.json"


def _open_breakers(state: Store, destinations: list[Destination], now: datetime) -> dict[str, str]:
    """The destinations landing leaves to the timer, with why."""
    out = {}
    for destination in destinations:
        found = state.read(_breaker_name(destination.name))
        if found is None:
            continue
        doc = orjson.loads(found.data)
        if datetime.fromisoformat(doc["open_until"]) > now:
            out[destination.name] = f"{doc['error']} (left to the run_scheduled_rules timer since {doc['since']})"
    return out


def _trip(state: Store, destination: str, error: str, now: datetime) -> None:
    state.write(_breaker_name(destination), orjson.dumps(
        {"destination": destination, "error": error, "since": now.isoformat(),
         "open_until": (now + COOLDOWN).isoformat()}))


def _reset(state: Store, destination: str) -> None:
    state.delete(_breaker_name(destination))  # a breaker that is not there is fine: delete ignores a missing name


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
