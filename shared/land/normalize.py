"""Turns a batch of Event Hub events into parquet rows in the lake; bad events go to quarantine with their reason.

Two families of events take this one path (a parameter, `Family`): Graph alerts (`ALERTS`, one alert an event, into
`security_alerts`) and Azure Monitor records (`LOGS`, `{"records": [...]}` an event, each record routed by its
category to its table; a bad record is quarantined alone and the event's other records land).

Runs in the normalize functions' cold start, so it must not import msgraph or the Graph client.
Transient storage errors are raised, not quarantined: the function's retry policy then holds the checkpoint and
the batch is delivered again, and the deterministic file names make the retry overwrite instead of duplicate.

The cyclic garbage collector is paused while a batch is parsed and normalized (see `_gc_paused`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa

from normalizers import AlertBatch, new_batch, log_schema, schema
from normalizers.logs import LogBatch
from normalizers.names import TABLE
from shared.core.errors import one_line
from shared.core.json_text import canonical_json
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


@dataclass(frozen=True)
class Family:
    """What a delivery's events hold, and everything the landing path does differently for it."""

    name: str  # kept with every event it quarantines, so that `graphlake replay` lands it the same way
    component: str  # of its health records (shared/land/retries.py)
    source_label: str  # p_source_label when the event names none
    # The tables of a batch's good events, by table name; bad events quarantined and counted into the result.
    tables: Callable[[Family, Sequence[InboundEvent], Store, datetime, NormalizeResult], dict[str, pa.Table]]
    parquet_options: Mapping[str, Any]


def normalize_events(events: Sequence[InboundEvent], *, lake: Store, state: Store, detector: Detector | None = None,
                     parse_time: datetime | None = None, family: Family | None = None) -> NormalizeResult:
    family = family or ALERTS
    result = NormalizeResult()
    with _gc_paused():
        tables = family.tables(family, events, state, parse_time or datetime.now(UTC), result)
    landed = [table for table in tables.items() if table[1].num_rows]
    for name, table in landed:
        result.files += write_table(lake, table, table_name=name, parquet_options=family.parquet_options)
        result.rows += table.num_rows
    # Rules run on the rows just landed, before the caller acknowledges the batch (None: detections are off); each
    # rule on the rows of its LogTypes only (detections/engine.py), so every family's tables go to the detector.
    if detector is not None and landed:
        detected = detector.detect([table for _, table in landed], lake=lake, state=state, now=datetime.now(UTC))
        result.rule_errors += [str(f) for f in getattr(detected, "failures", None) or []]
    return result


def _alert_tables(family: Family, events: Sequence[InboundEvent], state: Store, parse_time: datetime,
                  result: NormalizeResult) -> dict[str, pa.Table]:
    """The table of the batch's good events; bad ones are quarantined and counted into result.

    The batch is dropped once its table is built (on return), while the collector is still paused: see
    _gc_paused.
    """
    batch = new_batch(parse_time)
    # The batch index of each row id's last version; a re-delivered version replaces the earlier one.
    index_by_id: dict[str, int] = {}
    for event in events:
        try:
            row_id = _add(batch, event, state, family)
        except BadEvent as exc:
            result.quarantined.append(quarantine_event(state, event, str(exc), family))
            continue
        if row_id in index_by_id:
            result.duplicates += 1
        index_by_id[row_id] = len(batch) - 1
    # In the lake's order already, so that write_table has nothing to sort.
    return {TABLE: batch.table(batch.in_event_time_order(index_by_id.values() if result.duplicates else None))}


def _log_tables(family: Family, events: Sequence[InboundEvent], state: Store, parse_time: datetime,
                result: NormalizeResult) -> dict[str, pa.Table]:
    """The tables of the batch's good records, each routed by its category; a bad record is quarantined alone (its
    own JSON, with the event's metadata and its index in the event), and the event's other records land."""
    batch = LogBatch(parse_time)
    for event in events:
        try:
            records = _records_of(event.body)
        except BadEvent as exc:
            result.quarantined.append(quarantine_event(state, event, str(exc), family))
            continue
        source_id, source_label = _source(event, family)
        for index, record in enumerate(records):
            try:
                if not batch.add(record, source_id=source_id, source_label=source_label):
                    result.duplicates += 1
            except Exception as exc:  # noqa: BLE001 - the normalizer is pure: whatever it raises is this record's fault
                reason = one_line(exc, with_type=True)
                alone = len(records) == 1 and record is not None
                result.quarantined.append(quarantine_event(
                    state, event, reason if alone else f"record {index}: {reason}", family,
                    raw=None if alone else canonical_json(record), record=index))
    return batch.tables()


def _records_of(body: bytes) -> list[Any]:
    """The records of an event's body: Azure Monitor's `{"records": [...]}`, or one record on its own (a record
    quarantined alone, replayed)."""
    doc = _parsed(body, "body")
    if type(doc) is not dict:
        raise BadEvent(f"body is a JSON {type(doc).__name__}, not an object "
                       '(Azure Monitor sends {"records": [...]})')
    if "records" in doc and not any(type(key) is str and key.lower() == "category" for key in doc):
        if type(doc["records"]) is not list:
            raise BadEvent('body\'s "records" is not a list of records (Azure Monitor sends {"records": [...]})')
        return doc["records"]
    return [doc]


ALERTS = Family("alerts", "normalize", DEFAULT_SOURCE_LABEL, _alert_tables, schema.PARQUET_WRITE_OPTIONS)
LOGS = Family("logs", "normalize_logs", "Azure Monitor", _log_tables, log_schema.PARQUET_WRITE_OPTIONS)
FAMILIES = {family.name: family for family in (ALERTS, LOGS)}


def quarantine_event(state: Store, event: InboundEvent, reason: str, family: Family | None = None, *,
                     raw: bytes | None = None, record: int | None = None) -> str:
    """Quarantine the event (or `raw`, one record of it) with everything replay needs (body, properties, where it
    came from, its family); its name."""
    extra = {"family": (family or ALERTS).name, **({} if record is None else {"record": record})}
    return quarantine(state, raw=event.body if raw is None else raw, error=reason,
                      metadata={**event.metadata, **extra,
                                "properties": {k: _text(v) for k, v in event.properties.items()}})


def family_of(metadata: Mapping[str, Any]) -> Family:
    """The family a quarantined event's metadata names; alerts for documents written before families were."""
    return FAMILIES.get(_text(metadata.get("family")) or ALERTS.name, ALERTS)


def _source(event: InboundEvent, family: Family) -> tuple[str | None, str]:
    props = event.properties
    # None: the row's tenantId.
    return _text(props.get("source_id")) or None, _text(props.get("source_label")) or family.source_label


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is parsed and normalized.

    Parsing a batch allocates a few hundred thousand dicts and lists, which trigger collection after
    collection, each walking every object of the batch still alive, and there is nothing to collect: parsed
    JSON and the normalizer's values hold no reference cycles, so reference counting frees them. Whatever
    was allocated in the pause and is still alive when it ends is walked by the next collection, so the
    pause must outlive the batch's objects (see _alert_tables). Re-enabled only if it was enabled, so a
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


def _add(batch: AlertBatch, event: InboundEvent, state: Store, family: Family) -> str:
    """Add the event's alert to the batch; its p_row_id."""
    source_id, source_label = _source(event, family)
    alert = _alert_of(event, state)  # Storage errors propagate: they are transient, not the event's.
    try:
        return batch.add(alert, source_id=source_id, source_label=source_label,
                         pull_time=_pull_time(event.properties.get("pulled_at")))
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
