"""Turns a batch of Event Hub events into parquet rows in the lake; bad events go to quarantine with their reason.

Runs in the normalize_alerts function's cold start, so it must not import msgraph or the Graph client.
Transient storage errors are raised, not quarantined: the function's retry policy then holds the checkpoint and
the batch is delivered again, and the deterministic file names make the retry overwrite instead of duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from normalizers import normalize_alert
from normalizers.schema import TABLE, rows_to_table
from shared.event_format import CLAIM_CHECK_KEY
from shared.lake import write_table
from shared.quarantine import quarantine
from shared.storage import Store

DEFAULT_SOURCE_LABEL = "Microsoft Graph"


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


class BadEvent(Exception):
    """The event can never become a row (not JSON, not an alert, a claim check that is gone)."""


def normalize_events(events: Sequence[InboundEvent], *, lake: Store, state: Store,
                     parse_time: datetime | None = None) -> NormalizeResult:
    parse_time = parse_time or datetime.now(UTC)
    result = NormalizeResult()
    rows_by_id: dict[str, dict] = {}
    for event in events:
        try:
            alert = _alert_of(event, state)  # storage errors here propagate: they are transient, not the event's
            row = _normalize(alert, event.properties, parse_time)
        except BadEvent as exc:
            result.quarantined.append(quarantine(
                state, raw=event.body, error=str(exc),
                metadata={**event.metadata, "properties": {k: _text(v) for k, v in event.properties.items()}}))
            continue
        if row["p_row_id"] in rows_by_id:
            result.duplicates += 1
        rows_by_id[row["p_row_id"]] = row
    if rows_by_id:
        result.files = write_table(lake, rows_to_table(list(rows_by_id.values())), table_name=TABLE)
        result.rows = len(rows_by_id)
    return result


def _normalize(alert: Any, props: Mapping[str, Any], parse_time: datetime) -> dict:
    fallback_source = str(alert.get("tenantId") or "") if isinstance(alert, dict) else ""
    try:
        return normalize_alert(
            alert,
            source_id=_text(props.get("source_id")) or fallback_source,
            source_label=_text(props.get("source_label")) or DEFAULT_SOURCE_LABEL,
            parse_time=parse_time)
    except Exception as exc:  # noqa: BLE001 - the normalizer is pure: whatever it raises is this event's fault
        raise BadEvent(_one_line(exc)) from exc


def _alert_of(event: InboundEvent, state: Store) -> dict:
    try:
        doc = orjson.loads(event.body)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"body is not JSON: {exc}") from None
    if isinstance(doc, dict) and CLAIM_CHECK_KEY in doc:
        found = state.read(doc[CLAIM_CHECK_KEY])
        if found is None:
            raise BadEvent(f"claim check {doc[CLAIM_CHECK_KEY]} is missing")
        return orjson.loads(found[0])
    return doc


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]
