"""One delivery of an Event Hubs batch to the normalizer: what retries, what gives up, and the partition's health.

- A bad event (not JSON, not an alert, a claim check that is gone) is quarantined alone by normalize_events, and
  the batch goes on.
- A storage outage (no connection, a 5xx, 408 or 429, an OSError of a local folder) raises on every delivery: the
  function's retry policy (forever, backing off) holds the partition's checkpoint until storage is back. Nothing is
  given up, because the events cannot be kept anywhere else meanwhile.
- Any other exception (a bug, a permanent 4xx such as a missing role or a leased blob) is counted against the batch.
  It raises until `max_attempts` deliveries of the batch failed; the last one writes every event of the batch to
  quarantine with the reason and returns, so the host checkpoints past it and the partition moves on.
  `graphlake replay` brings them back once the cause is fixed.

The count lives in the partition's health record, keyed by the batch's first sequence number, not in the host's
retry_context: that count lives in the instance's memory and starts again at 0 when the batch moves to another
instance. A delivery that dies without a result (its process killed, out of memory) counts too: each delivery
marks the record `in_flight` with the batch before it starts and clears it when it ends, so the next delivery that
finds its own batch still in flight knows the last one died.

The mark is state like any other, so a storage outage can refuse it: a delivery whose mark, or its clearing, cannot
be written raises StateUnavailable, transient like any outage, and counts nothing. A mark left behind that way names
the process that wrote it (`in_flight_by`); the next delivery in that same process knows its writer did not die (a
killed delivery takes its process with it) and does not count it. A mark left by another process counts: that
process died, or (rarer: a clearing refused, then the partition moved to another instance) it cannot be told apart.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.core import health
from shared.core.errors import ConfigError, EndpointUnreachable, GraphlakeError, one_line
from shared.land.detect import Detector
from shared.land.normalize import ALERTS, Family, InboundEvent, NormalizeResult, normalize_events, quarantine_event
from shared.core.storage import Store

log = logging.getLogger("graphlake.normalize")

_TRANSIENT_STATUS = frozenset({408, 429})


class StateUnavailable(GraphlakeError):
    """The partition's record (the batch's in-flight mark) could not be read or written: a storage outage for this
    delivery, retried by the host and never counted against the batch."""


def _new_process_id() -> str:
    # The random part tells apart a restarted worker that was given the same pid (pid 1 in a container, say).
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


_PROCESS_ID = _new_process_id()


def _renew_process_id() -> None:
    global _PROCESS_ID
    _PROCESS_ID = _new_process_id()


# A forked child is a process of its own: if it dies, its parent's marks must not vouch for it.
os.register_at_fork(after_in_child=_renew_process_id)


@dataclass(frozen=True)
class Batch:
    partition: str  # the Event Hub partition id, or "local"
    first_sequence: int | None  # the same on every delivery of the batch: the checkpoint it starts after


def is_transient(exc: BaseException) -> bool:
    """True for failures that go away by themselves (storage unreachable or overloaded) or with a setting fixed."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError | EndpointUnreachable | ConfigError | OSError
                  | StateUnavailable):
        return True
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        return status is None or status >= 500 or status in _TRANSIENT_STATUS
    return False


def normalize_delivery(events: Sequence[InboundEvent], batch: Batch, *, lake: Store, state: Store,
                       max_attempts: int, detector: Detector | None = None, now: datetime | None = None,
                       family: Family = ALERTS) -> NormalizeResult:
    """Normalize the batch; raise while it should be delivered again; quarantine it whole once it gave up. The
    partition's record is the family's (`normalize` for alerts, `normalize_logs` for Azure Monitor records)."""
    try:
        previous = health.previous(state, family.component, batch.partition)
    except Exception as exc:  # noqa: BLE001 - whatever the store raised, the delivery cannot be judged without it
        raise StateUnavailable(f"partition {batch.partition}: the record holding the batch's in-flight mark could "
                               f"not be read: {one_line(exc, with_type=True)}") from exc
    same_batch = "batch_first_sequence" in previous and previous["batch_first_sequence"] == batch.first_sequence
    attempts = previous.get("batch_attempts", 0) if same_batch else 0
    failures = previous.get("consecutive_failures", 0)
    carried = {key: previous.get(key) for key in ("result", "error")}
    # When the partition last landed a record, carried by every record until the next landing: what status judges
    # a stream that stopped by.
    last_landed = previous.get("last_landed")
    if same_batch and previous.get("in_flight") == batch.first_sequence and previous.get("in_flight_by") != _PROCESS_ID:
        attempts, failures = attempts + 1, failures + 1
        carried = {"result": "failed", "error": "the last delivery of this batch stopped without a result (its "
                                                "process was killed or ran out of memory)"}
        if attempts >= max_attempts:
            return _give_up(events, batch, state, now, carried["error"], attempts, failures, family, last_landed)
    # Cleared by whatever this delivery records at its end; still there if it dies.
    _write_mark(state, batch, family, now, "in-flight mark", **{"result": "ok", "error": None, **carried},
                consecutive_failures=failures, batch_attempts=attempts, in_flight=batch.first_sequence,
                in_flight_by=_PROCESS_ID, last_landed=last_landed)
    try:
        result = normalize_events(events, lake=lake, state=state, detector=detector, family=family)
    except Exception as exc:  # noqa: BLE001 - every failure is classified below, then raised or given up
        error = one_line(exc, with_type=True)
        failures += 1
        if is_transient(exc):
            _record_quietly(state, batch, family, now, result="failed", consecutive_failures=failures, error=error,
                            batch_attempts=attempts, last_landed=last_landed)
            raise
        attempts += 1
        if attempts < max_attempts:
            # Not written in an outage: the mark stays, this process's own, so the attempt is not counted; the
            # outage decides, and an outage never gives a batch up.
            _record_quietly(state, batch, family, now, result="failed", consecutive_failures=failures, error=error,
                            batch_attempts=attempts, last_landed=last_landed)
            raise
        return _give_up(events, batch, state, now, error, attempts, failures, family, last_landed)
    # The batch landed, but until the mark is cleared the next delivery of it cannot be judged: raise, and the
    # redelivery (its rows deduplicate) clears it once storage takes writes again.
    if result.rows or result.duplicates:  # a batch quarantined whole landed nothing
        last_landed = (now or datetime.now(UTC)).isoformat()
    _write_mark(state, batch, family, now, "in-flight mark's clearing", result="ok", consecutive_failures=0,
                error=None, batch_attempts=0, rows=result.rows, duplicates=result.duplicates, files=len(result.files),
                quarantined=len(result.quarantined), last_landed=last_landed)
    return result


def _write_mark(state: Store, batch: Batch, family: Family, now: datetime | None, what: str, **doc: Any) -> None:
    try:
        _record(state, batch, family, now, **doc)
    except Exception as exc:  # noqa: BLE001 - whatever the store raised, it is an outage of the state store here
        raise StateUnavailable(f"partition {batch.partition}: the batch's {what} could not be written "
                               f"({one_line(exc, with_type=True)}); the delivery is retried and not counted "
                               "against the batch") from exc


def _give_up(events: Sequence[InboundEvent], batch: Batch, state: Store, now: datetime | None, error: str,
             attempts: int, failures: int, family: Family, last_landed: str | None) -> NormalizeResult:
    """Every event of the batch to quarantine with the reason; the delivery then succeeds and the partition moves
    on."""
    reason = f"batch of {len(events)} events given up after {attempts} attempts: {error}"
    result = NormalizeResult(quarantined=[quarantine_event(state, event, reason, family) for event in events])
    log.error("graphlake.%s partition %s: %s", family.component, batch.partition, reason)
    _record(state, batch, family, now, result="gave_up", consecutive_failures=failures, error=error,
            batch_attempts=attempts, quarantined=len(result.quarantined), last_landed=last_landed)
    return result


def _record(state: Store, batch: Batch, family: Family, now: datetime | None, **doc: Any) -> None:
    doc.setdefault("rows", 0)
    doc.setdefault("quarantined", 0)
    doc.setdefault("in_flight", None)
    doc.setdefault("in_flight_by", None)
    health.record(state, family.component, batch.partition, {**doc, "batch_first_sequence": batch.first_sequence},
                  now=now)


def _record_quietly(state: Store, batch: Batch, family: Family, now: datetime | None, **doc: Any) -> None:
    """Record a failure without hiding it: if the record cannot be written either, the original error is raised."""
    try:
        _record(state, batch, family, now, **doc)
    except Exception:  # noqa: BLE001
        log.warning("graphlake.%s partition %s: health record not written", family.component, batch.partition,
                    exc_info=True)

