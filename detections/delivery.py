"""The outbox: alerts waiting for their destinations, kept in the state store until every destination took them.

`detections/outbox/<batch>.json` holds the alerts one landing (or one scheduled rule's run) queued, each entry with
the destinations that have it: queueing writes one blob per batch, whatever its size and however many alerts wait.
The name hashes the batch's alert ids, so a batch delivered again finds its blob already there. Once every
destination took an alert, `detections/sent/<alert id>.json` records it, and every send looks for that marker
first: an alert that a drain killed halfway, or a batch delivered again, already sent is never sent twice.

Two kinds of run send:
- landing (`deliver_new`, a normalize batch) tries only the blob it just queued, within a time budget
  (ALERT_DELIVERY_BUDGET_SECONDS), and not a destination whose breaker is open: one that failed in the last
  COOLDOWN. A dead or hanging destination so costs landing one budget, then the one blob write, until the timer
  finds it well.
- the run_scheduled_rules timer (`deliver_pending`) drains the whole outbox, with every destination's full retries;
  it opens the breaker of a destination that still fails and closes it once one takes its alerts. A destination
  that failed in a run is not tried again in that run; a blob whose destinations all failed is read (to count its
  alerts) and not written.

A destination refusing one alert for what it holds (HTTP 400, 413, 422) fails that alert only: it stays queued
with the answer, and the destination goes on with the others. A blob being sent is claimed (If-Match write of
`claimed_until`), so two instances never send it at once; a claim left by a crashed instance expires. A
destination taking an alert that another has not yet is written back at once, so a drain that dies later never
sends it to that one again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from detections.alerts import safe_name
from detections.destinations import AlertRefused, DeliveryFailed, Destination, route, send
from shared.core import health
from shared.core.errors import PreconditionFailed
from shared.core.storage import Store

OUTBOX = "detections/outbox/"
SENT = "detections/sent/"
BREAKERS = "detections/breakers/"
CLAIM = timedelta(minutes=5)
# As long as the timer's default schedule: while it is open, the timer is the one trying the destination.
COOLDOWN = timedelta(minutes=5)
# Refusals named in the health record: a destination refusing every alert would otherwise write them all there.
_REFUSALS_KEPT = 10
log = logging.getLogger("graphlake.detections")


@dataclass
class DeliveryReport:
    delivered: int = 0  # alerts every destination took in this run
    undelivered: int = 0  # alerts still waiting for a destination after this run
    errors: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """One run's sends: the destinations that failed in it (not tried again) and the alerts refused."""

    destinations: list[Destination]
    now: datetime
    client: httpx.Client
    deadline: float | None  # time.monotonic(); None in the timer
    failed: dict[str, str] = field(default_factory=dict)  # destination -> its error in this run
    refused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what is wrong with a rule's destinations() or OutputIds
    report: DeliveryReport = field(default_factory=DeliveryReport)
    started: float = field(default_factory=time.monotonic)

    def clock(self) -> datetime:
        """`now` moved on by the time this run has taken: claims are dated from it."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def can_send(self) -> bool:
        return not (all(d.name in self.failed for d in self.destinations) or _out_of_time(self.deadline))

    def errors(self) -> list[str]:
        return list(self.failed.values()) + self.problems + self.refused[:_REFUSALS_KEPT]

    def targets(self, entry: dict[str, Any]) -> list[Destination]:
        """The rule's choice of destinations (destinations(), OutputIds), resolved against those configured now, so
        an alert queued while ALERT_DESTINATIONS was broken goes where the rule says once it is fixed."""
        routed, problems = route(entry["alert"], self.destinations)
        for problem in problems:
            if problem not in self.problems:
                log.error("graphlake.detections %s", problem)
                self.problems.append(problem)
        if routed is not None and not routed:
            entry["last_error"] = problems[-1] if problems else "no destination"
        return [d for d in self.destinations if routed is None or d.name in routed]


def enqueue(state: Store, alerts: list[dict[str, Any]]) -> str | None:
    """Queue a batch's alerts in one blob; its name (None when there is nothing to queue)."""
    if not alerts:
        return None
    ids = "\n".join(sorted(str(a["alert_id"]) for a in alerts))
    name = f"{OUTBOX}{hashlib.blake2b(ids.encode(), digest_size=16).hexdigest()}.json"
    doc = {"entries": [{"alert": a, "delivered": [], "attempts": 0, "last_error": None} for a in alerts],
           "claimed_until": None}
    try:
        state.write(name, orjson.dumps(doc, default=str), create_only=True)
    except PreconditionFailed:
        pass  # the same alerts already wait: this batch came again
    return name


def deliver_new(state: Store, destinations: list[Destination], name: str | None, queued: int, now: datetime, *,
                budget_seconds: float, client: httpx.Client | None = None) -> DeliveryReport:
    """Landing's try: the blob this batch queued (`queued` alerts), within `budget_seconds` in all, to the
    destinations whose breaker is closed. What it leaves waits for the timer; the delivery health record counts it."""
    if name is None or not destinations:
        return DeliveryReport()
    own_client = client is None
    run = _Run(destinations, now, client or httpx.Client(), time.monotonic() + budget_seconds)
    run.failed.update(_open_breakers(state, destinations, now))
    already_open = set(run.failed)
    try:
        if run.can_send():
            _deliver_batch(state, name, run)
        else:
            run.report.undelivered += queued  # no read and no write: the blob was just written
    finally:
        if own_client:
            run.client.close()
    for destination in run.failed.keys() - already_open:
        _trip(state, destination, run.failed[destination], now)
    report = run.report
    report.errors = run.errors()
    if report.undelivered:
        # Counted onto what the last run left: landing never lists the outbox. The timer's next run counts it exactly.
        before = health.previous(state, "detections", "delivery")
        _record(state, DeliveryReport(report.delivered, int(before.get("undelivered") or 0) + report.undelivered,
                                      report.errors or [f"no time left in landing's {budget_seconds:g} s"]), now)
    return report


def deliver_pending(state: Store, destinations: list[Destination], now: datetime, *,
                    client: httpx.Client | None = None) -> DeliveryReport:
    """The timer's drain: every alert waiting, every destination, whatever its breaker says."""
    names = _batches(state)
    own_client = client is None
    run = _Run(destinations, now, client or httpx.Client(), None)
    try:
        for name in names:
            if run.can_send():
                _deliver_batch(state, name, run)
            else:
                run.report.undelivered += _count(state, name)
    finally:
        if own_client:
            run.client.close()
    for destination in destinations:
        if destination.name in run.failed:
            _trip(state, destination.name, run.failed[destination.name], now)
        elif names:
            _reset(state, destination.name)
    run.report.errors = run.errors()
    _record(state, run.report, now)
    return run.report


def count_waiting(state: Store) -> int:
    """The alerts in the outbox (one read per queued batch)."""
    return sum(_count(state, name) for name in _batches(state))


def _batches(state: Store) -> list[str]:
    return [n for n in state.list(OUTBOX) if n.endswith(".json")]


def _count(state: Store, name: str) -> int:
    found = state.read(name)
    return len(_batch(found.data)["entries"]) if found is not None else 0


def _batch(data: bytes) -> dict[str, Any]:
    """A batch blob; one the per-alert outbox of earlier versions left (`detections/outbox/<alert id>.json`, one
    alert at the top) is read as a batch of one, and written back as one."""
    doc = orjson.loads(data)
    if "entries" not in doc:
        entry = {"alert": doc["alert"], "delivered": doc.get("delivered") or [], "attempts": doc.get("attempts") or 0,
                 "last_error": doc.get("last_error")}
        doc = {"entries": [entry], "claimed_until": doc.get("claimed_until")}
    return doc


def _deliver_batch(state: Store, name: str, run: _Run) -> None:
    """Send a queued batch's alerts; the report counts those every destination took and those left."""
    found = state.read(name)
    if found is None:
        return  # delivered by another instance meanwhile
    doc = _batch(found.data)
    entries = doc["entries"]
    claimed = doc.get("claimed_until")
    if claimed and datetime.fromisoformat(claimed) > run.clock():
        run.report.undelivered += len(entries)
        return
    try:
        etag = _write_back(state, name, doc, found.etag, run.clock() + CLAIM)
    except PreconditionFailed:
        run.report.undelivered += len(entries)  # another instance claimed it first
        return
    renew_at = time.monotonic() + CLAIM.total_seconds() / 2
    left: list[dict[str, Any]] = []
    done = 0  # entries gone from the blob: sent now, or found sent
    try:
        for index, entry in enumerate(entries):
            if not run.can_send():
                left.append(entry)
                continue
            if time.monotonic() >= renew_at:
                # A long drain keeps its claim: one that lapsed would let another instance send the same alerts.
                doc["entries"] = left + entries[index:]
                etag = _write_back(state, name, doc, etag, run.clock() + CLAIM)
                renew_at = time.monotonic() + CLAIM.total_seconds() / 2
            alert = entry["alert"]
            if state.read(f"{SENT}{alert['alert_id']}.json") is not None:
                done += 1  # sent by a run that died before writing this blob back, or by an earlier copy of the batch
                continue
            targets = run.targets(entry)
            took = _send_entry(entry, targets, run)
            if targets and all(d.name in entry["delivered"] for d in targets):
                state.write(f"{SENT}{alert['alert_id']}.json", orjson.dumps(
                    {"alert_id": alert["alert_id"], "rule_id": alert["rule_id"], "delivered": entry["delivered"],
                     "sent": run.now.isoformat()}))
                run.report.delivered += 1
                done += 1
                continue
            left.append(entry)
            if took:
                # One destination has it and another not yet: written now, so a run dying later cannot send it
                # to that one again.
                doc["entries"] = left + entries[index + 1:]
                etag = _write_back(state, name, doc, etag, datetime.fromisoformat(doc["claimed_until"]))
        if not left:
            state.delete(name)
            return
        doc["entries"] = left
        _write_back(state, name, doc, etag, None)
    except PreconditionFailed:
        log.warning("graphlake.detections %s was taken over by another instance; it sends the rest", name)
        run.report.undelivered += len(entries) - done
        return
    run.report.undelivered += len(left)


def _write_back(state: Store, name: str, doc: dict[str, Any], etag: str, claimed_until: datetime | None) -> str:
    """The batch blob as this run holds it (If-Match: only while no other instance took it); its new etag."""
    doc["claimed_until"] = claimed_until.isoformat() if claimed_until else None
    return state.write(name, orjson.dumps(doc, default=str), if_match=etag)


def _send_entry(entry: dict[str, Any], targets: list[Destination], run: _Run) -> bool:
    """Send one queued alert to the destinations that lack it; True when one of them took it now. With no target
    (OutputIds naming no configured destination) it waits, and the delivery health record says why, until
    OutputIds or ALERT_DESTINATIONS change."""
    alert, delivered, took = entry["alert"], set(entry["delivered"]), False
    for destination in targets:
        if destination.name in delivered or destination.name in run.failed or _out_of_time(run.deadline):
            continue
        try:
            send(destination, alert, run.client, deadline=run.deadline)
        except AlertRefused as exc:
            # This alert's content, not the destination: the others go on, and this one waits with the answer.
            entry["last_error"] = str(exc)
            run.refused.append(str(exc))
            log.warning("graphlake.detections alert %s refused: %s", alert["alert_id"], exc)
            continue
        except DeliveryFailed as exc:
            run.failed[destination.name] = str(exc)
            entry["last_error"] = str(exc)
            log.warning("graphlake.detections alert %s not delivered: %s", alert["alert_id"], exc)
            continue
        delivered.add(destination.name)
        took = True
    entry["delivered"] = sorted(delivered)
    entry["attempts"] += 1
    return took


def _out_of_time(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _breaker_name(destination: str) -> str:
    return f"{BREAKERS}{safe_name(destination)}.json"


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


def record_unsendable(state: Store, error: str, now: datetime, queued: int | None = None) -> int:
    """Destinations cannot be used (a bad ALERT_DESTINATIONS): record that, with the alerts waiting; their count.
    Landing gives the alerts it just `queued`, counted onto the last record's; the timer counts the outbox."""
    if queued is None:
        count = count_waiting(state)
    else:
        count = int(health.previous(state, "detections", "delivery").get("undelivered") or 0) + queued
    _record(state, DeliveryReport(undelivered=count, errors=[error]), now)
    return count


def _record(state: Store, report: DeliveryReport, now: datetime) -> None:
    health.record(state, "detections", "delivery", {
        "result": "failing" if report.undelivered else "ok", "undelivered": report.undelivered,
        "delivered": report.delivered, "error": report.errors[0] if report.errors else None,
        "errors": report.errors}, now=now)
