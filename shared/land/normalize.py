"""Turns a batch of Event Hub events into parquet rows in the lake; bad events go to quarantine with their reason.

Runs in the normalize_alerts function's cold start, so it must not import msgraph or the Graph client.
Transient storage errors are raised, not quarantined: the function's retry policy then holds the checkpoint and
the batch is delivered again, and the deterministic file names make the retry overwrite instead of duplicate.

The cyclic garbage collector is paused while a batch is parsed and normalized (see `_gc_paused`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa

from normalizers import AlertBatch, new_batch
from normalizers.names import TABLE
from normalizers.schema import PARQUET_WRITE_OPTIONS
from shared.core.errors import one_line
from shared.core.event_format import CLAIM_CHECK_KEY, CLAIM_CHECK_PREFIX
from shared.land.detect import Detector
from shared.land.lake_writer import write_table
from shared.land.quarantine import quarantine
from shared.core.storage import Store

DEFAULT_SOURCE_LABEL = "Microsoft Graph"
_decode_json = msgspec.json.Decoder().decode


@dataclass
class InboundEvent:
    body: bytes
    properties: Mapping[str, Any] = field(default_factory=dict)
    # Where the event came from (partition, sequence number, offset, enqueued time), kept with a quarantined copy.
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class NormalizeResult:
    rows: int = 0
    duplicates: int = 0
    files: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    rule_errors: list[str] = field(default_factory=list)  # what the rules raised on the batch's rows, one line each


class BadEvent(Exception):
    """The event can never become a row (not JSON, not an alert, a claim check that is gone)."""


def normalize_events(events: Sequence[InboundEvent], *, lake: Store, state: Store, detector: Detector | None = None,
                     parse_time: datetime | None = None) -> NormalizeResult:
    result = NormalizeResult()
    with _gc_paused():
        table = _normalize_batch(events, state, parse_time or datetime.now(UTC), result)
    if table.num_rows:
        result.files = write_table(lake, table, table_name=TABLE, parquet_options=PARQUET_WRITE_OPTIONS)
        result.rows = table.num_rows
        # Rules run on the rows just landed, before the caller acknowledges the batch (None: detections are off).
        if detector is not None:
            detected = detector.detect(table, lake=lake, state=state, now=datetime.now(UTC))
            result.rule_errors = [str(f) for f in getattr(detected, "failures", None) or []]
    return result


def _normalize_batch(events: Sequence[InboundEvent], state: Store, parse_time: datetime,
                     result: NormalizeResult) -> pa.Table:
    """The table of the batch's good events; bad ones are quarantined and counted into result.

    The batch is dropped once its table is built (on return), while the collector is still paused: see
    _gc_paused.
    """
    batch = new_batch(parse_time)
    # The batch index of each row id's last version; a re-delivered version replaces the earlier one.
    index_by_id: dict[str, int] = {}
    for event in events:
        try:
            row_id = _add(batch, event, state)
        except BadEvent as exc:
            result.quarantined.append(quarantine_event(state, event, str(exc)))
            continue
        if row_id in index_by_id:
            result.duplicates += 1
        index_by_id[row_id] = len(batch) - 1
    # In the lake's order already, so that write_table has nothing to sort.
    return batch.table(batch.in_event_time_order(index_by_id.values() if result.duplicates else None))


def quarantine_event(state: Store, event: InboundEvent, reason: str) -> str:
    """Quarantine the event with everything replay needs (body, properties, where it came from); its name."""
    return quarantine(state, raw=event.body, error=reason,
                      metadata={**event.metadata, "properties": {k: _text(v) for k, v in event.properties.items()}})


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is parsed and normalized.

    Parsing a batch allocates a few hundred thousand dicts and lists, which trigger collection after
    collection, each walking every object of the batch still alive, and there is nothing to collect: parsed
    JSON and the normalizer's values hold no reference cycles, so reference counting frees them. Whatever
    was allocated in the pause and is still alive when it ends is walked by the next collection, so the
    pause must outlive the batch's objects (see _normalize_batch). Re-enabled only if it was enabled, so a
    caller's own pause holds.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _add(batch: AlertBatch, event: InboundEvent, state: Store) -> str:
    """Add the event's alert to the batch; its p_row_id."""
    props = event.properties
    source_id = _text(props.get("source_id")) or None  # None: the alert's tenantId.
    source_label = _text(props.get("source_label")) or DEFAULT_SOURCE_LABEL
    alert = _alert_of(event, state)  # Storage errors propagate: they are transient, not the event's.
    try:
        return batch.add(alert, source_id=source_id, source_label=source_label,
                         pull_time=_pull_time(props.get("pulled_at")))
    except Exception as exc:  # noqa: BLE001 - the normalizer is pure: whatever it raises is this event's fault
        raise BadEvent(one_line(exc, with_type=True)) from exc


def _pull_time(value: object) -> datetime | None:
    """The pull's `pulled_at` property (our own ISO text); None when absent or unreadable: it orders versions, and
    losing it must not lose the alert."""
    try:
        moment = datetime.fromisoformat(_text(value)) if value else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _alert_of(event: InboundEvent, state: Store) -> Any:
    doc = _parsed(event.body, "body")
    if isinstance(doc, dict) and CLAIM_CHECK_KEY in doc:
        name = doc[CLAIM_CHECK_KEY]
        if type(name) is not str:
            raise BadEvent(f"claim check pointer {name!r} is not a blob name")
        if not name.startswith(CLAIM_CHECK_PREFIX):
            raise BadEvent(f"claim check pointer {name!r} is not under {CLAIM_CHECK_PREFIX}")
        try:
            found = state.read(name)
        except ValueError as exc:  # The name is not a valid blob name: the event's fault, not the storage's.
            raise BadEvent(f"claim check pointer: {one_line(exc, with_type=True)}") from None
        if found is None:
            raise BadEvent(f"claim check {name} is missing")
        return _parsed(found.data, f"claim check {name}")
    return doc


def _parsed(data: bytes, what: str) -> Any:
    """JSON as Python values. msgspec, not orjson: it keeps integers beyond 64 bits exact, where orjson reads
    them as floats, and the evidence column must hold what Graph sent."""
    try:
        return _decode_json(data)
    except msgspec.DecodeError as exc:
        raise BadEvent(f"{what} is not JSON: {exc}") from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
