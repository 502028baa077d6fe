"""`graphlake replay`: quarantined events back through the normalizer once their cause is fixed.

Each quarantine document holds the event's raw bytes, application properties and origin, so the event is rebuilt as
the normalizer first saw it and normalized again, in batches. A document is removed only after its event landed: the
batch's parquet files are written (an exception leaves every document of the batch in place). Replaying is
idempotent: a version that had landed already (a batch given up after part of it was written, say) keeps its
p_row_id, and readers and compaction keep one row per p_row_id. An event that fails again stays, its document
rewritten with today's reason and the reason it was first quarantined for (`first_error`).

A document whose event can never land (a test message, a product's malformed export) is dropped by name (`drop`),
after which `graphlake status` no longer counts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from dataclasses import dataclass, field

import orjson

from shared.land.detect import Detector
from shared.land.normalize import InboundEvent, family_of, normalize_events
from shared.land.quarantine import PREFIX
from shared.core.storage import Store

BATCH_EVENTS = 500
REPLAYED_FROM = "replayed_from"


@dataclass
class ReplaySummary:
    examined: int = 0
    landed: int = 0  # events that are rows now; their documents are gone
    rows: int = 0
    stayed: Counter[str] = field(default_factory=Counter)  # reason -> documents still in quarantine
    first_stayed: dict[str, str] = field(default_factory=dict)  # reason -> the first such document's name

    @property
    def stayed_total(self) -> int:
        return sum(self.stayed.values())


def replay(state: Store, lake: Store, *, detector: Detector | None = None,
           batch_events: int = BATCH_EVENTS) -> ReplaySummary:
    summary = ReplaySummary()
    # Listed first: documents re-quarantined on today's date must not come round again in the same run.
    listed = [name for name in state.list(PREFIX) if name.endswith(".json")]
    for start in range(0, len(listed), batch_events):
        names = listed[start:start + batch_events]
        events: list[InboundEvent] = []
        origin: list[str] = []
        first_errors: list[tuple[str, str]] = []
        for name in names:
            found = state.read(name)
            if found is None:  # replayed meanwhile by another run
                continue
            summary.examined += 1
            try:
                doc = orjson.loads(found.data)
                events.append(_event(doc, name))
                first_errors.append((doc.get("first_error") or doc.get("error") or "",
                                     doc.get("first_quarantined_at") or doc.get("quarantined_at") or ""))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
                _stays(summary, f"not a quarantine document graphlake can replay ({type(exc).__name__})", name)
                continue
            origin.append(name)
        if not events:
            continue
        # Each event lands the way its family does (alerts, or Azure Monitor records routed by category). Raises
        # (storage down) before anything is removed: every document of the batch stays.
        quarantined_again: list[str] = []
        families = [family_of(event.metadata) for event in events]
        for family in {family.name: family for family in families}.values():
            result = normalize_events([e for e, f in zip(events, families) if f is family], lake=lake,
                                      state=state, detector=detector, family=family)
            summary.rows += result.rows
            quarantined_again += result.quarantined
        again = {name.rsplit("/", 1)[1].removesuffix(".json"): name for name in quarantined_again}
        firsts = dict(zip(origin, first_errors))
        for event, name in zip(events, origin):
            new_name = again.pop(_digest(event.body), None)
            if new_name:
                if new_name != name:  # quarantined on another day than before: keep one document, the new one
                    state.delete(name)
                _stays_again(state, summary, new_name, firsts[name])
            else:
                state.delete(name)
                summary.landed += 1
        # Left: the bad records of events whose other records landed, each quarantined alone under a name of its
        # own; they stay, with what their event was first quarantined for.
        for new_name in again.values():
            doc = orjson.loads(state.read(new_name).data)
            _stays_again(state, summary, new_name, firsts.get(doc["metadata"].get(REPLAYED_FROM), ("", "")))
    return summary


def _stays_again(state: Store, summary: ReplaySummary, name: str, first: tuple[str, str]) -> None:
    """A document quarantined again by this replay: it keeps the reason it first failed for, which is what an
    operator fixed against (today's may only echo it), and counts as staying."""
    first_error, first_at = first
    doc = orjson.loads(state.read(name).data)
    doc.update(first_error=first_error or doc["error"], first_quarantined_at=first_at or None)
    state.write(name, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    _stays(summary, doc["error"], name, first_error)


def _event(doc: dict, name: str) -> InboundEvent:
    metadata = {**doc["metadata"], REPLAYED_FROM: name}  # carried into a document one of its records may get
    properties = metadata.pop("properties", None) or {}
    return InboundEvent(body=base64.b64decode(doc["raw_base64"], validate=True), properties=properties,
                        metadata=metadata)


def _digest(raw: bytes) -> str:
    # The name quarantine gives an event: the first 24 hex of sha256 over its raw bytes.
    return hashlib.sha256(raw).hexdigest()[:24]


def _stays(summary: ReplaySummary, reason: str, name: str, first_error: str = "") -> None:
    if first_error and first_error != reason:
        reason = f"{reason} (first quarantined for: {first_error})"
    summary.stayed[reason] += 1
    summary.first_stayed.setdefault(reason, name)


def quarantined(state: Store) -> list[tuple[str, str]]:
    """Every quarantine document with the reason it was first quarantined for."""
    out = []
    for name in sorted(n for n in state.list(PREFIX) if n.endswith(".json")):
        found = state.read(name)
        if found is None:
            continue
        try:
            doc = orjson.loads(found.data)
            out.append((name, doc.get("first_error") or doc.get("error") or "no reason recorded"))
        except orjson.JSONDecodeError:
            out.append((name, "not a quarantine document graphlake can read"))
    return out


def drop(state: Store, names: list[str]) -> list[str]:
    """Remove these quarantine documents (their events are given up for good); the names that were not there."""
    missing = []
    for name in names:
        if not name.startswith(PREFIX) or not name.endswith(".json") or state.read(name) is None:
            missing.append(name)
            continue
        state.delete(name)
    return missing

