"""Matches into alerts with Panther's semantics (detections/dedup.py), state in the state store.

An alert is queued for delivery once its period's Threshold matches have accumulated, carrying the count.

State: `detections/alerts/<rule id>/<sha256 of the dedup string>.json`, read and written back with If-Match (or
create-only), so two normalizer instances counting into one alert at once never lose a count: the loser of the
race reads again and re-applies its matches. Each doc remembers the match ids counted in the period, so a
redelivered batch counts nothing twice.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from detections.dedup import DedupPeriod, period_at
from detections.engine import Match
from shared.core.errors import PreconditionFailed
from shared.core.storage import Store

PREFIX = "detections/alerts/"
# Match ids kept per alert for redelivery checks; past this, further matches of the period are counted unchecked.
MAX_MATCH_IDS = 1000
_MAX_RACES = 20
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
SAMPLE_EVENTS = 5
SUMMARY_VALUES = 20


@dataclass
class Queued:
    """An alert that reached its threshold and must be delivered (again, if a crash may have lost it)."""

    alert: dict[str, Any]


def record_matches(state: Store, matches: list[Match], now: datetime) -> list[Queued]:
    """Give each match its p_alert_id; return the alerts to deliver."""
    groups: dict[tuple[str, str], list[Match]] = defaultdict(list)
    for m in matches:
        groups[(m.rule.rule_id, m.dedup)].append(m)
    queued = []
    for (rule_id, dedup), group in sorted(groups.items()):
        found = _update(state, group, now)
        if found is not None:
            queued.append(found)
    return queued


def safe_name(text: str) -> str:
    """A rule id or destination name as one blob-name segment."""
    return _SAFE.sub("_", text).lstrip(".") or "rule"


def alert_name(rule_id: str, dedup: str) -> str:
    rule_part = safe_name(rule_id)
    return f"{PREFIX}{rule_part}/{hashlib.sha256(dedup.encode()).hexdigest()[:40]}.json"


def alert_id(rule_id: str, dedup: str, created: str) -> str:
    return hashlib.blake2b(f"{rule_id}\0{dedup}\0{created}".encode(), digest_size=16).hexdigest()


def _update(state: Store, group: list[Match], now: datetime) -> Queued | None:
    rule, dedup = group[0].rule, group[0].dedup
    name = alert_name(rule.rule_id, dedup)
    for _ in range(_MAX_RACES):
        found = state.read(name)
        doc = orjson.loads(found.data) if found else None
        stored = _period(doc)
        period = period_at(stored, now, rule.dedup_minutes, rule.threshold)
        # Taken from the stored period even when it is over: a match it counted whose marker a crash kept from being
        # written (detections/matched.py) comes back unmarked, and must not open a new alert.
        counted = set(doc["match_ids"]) if doc else set()
        if period is not stored and not (doc and all(m.match_id in counted for m in group)):
            doc = _fresh(rule.rule_id, dedup, rule.dedup_minutes, rule.threshold, now)
        elif period is not stored:
            period = stored
        new = []
        for m in group:
            if m.match_id not in counted:
                counted.add(m.match_id)
                new.append(m)
        crossing = period.count_in(len(new))
        if new or crossing:
            doc["count"] = period.count
            doc["match_ids"] += [m.match_id for m in new][:max(0, MAX_MATCH_IDS - len(doc["match_ids"]))]
            doc["last_match"] = now.isoformat()
            if crossing:
                doc["queued"] = now.isoformat()
                doc["alert"] = _alert(doc, group, now)
            body = orjson.dumps(doc, default=str)
            try:
                if found is None:
                    state.write(name, body, create_only=True)
                else:
                    state.write(name, body, if_match=found.etag)
            except PreconditionFailed:
                continue  # another instance counted first: read its doc and apply these matches on top
        for m in group:
            m.alert_id = doc["alert_id"]
        if crossing:
            return Queued(doc["alert"])
        if doc["queued"] is not None and not new:
            # Every match was counted before: a redelivery, perhaps after a crash between counting and queueing.
            return Queued(doc["alert"])
        return None
    raise PreconditionFailed(f"alert state {name} kept changing under {_MAX_RACES} attempts to update it")


def _period(doc: dict[str, Any] | None) -> DedupPeriod | None:
    if doc is None:
        return None
    return DedupPeriod(datetime.fromisoformat(doc["created"]), doc["period_minutes"], doc["threshold"], doc["count"],
                       sent=doc["queued"] is not None)


def _fresh(rule_id: str, dedup: str, period_minutes: int, threshold: int, now: datetime) -> dict[str, Any]:
    created = now.isoformat()
    return {"rule_id": rule_id, "dedup": dedup, "alert_id": alert_id(rule_id, dedup, created), "created": created,
            "period_minutes": period_minutes, "threshold": threshold, "count": 0, "match_ids": [],
            "last_match": None, "queued": None, "alert": None}


def _alert(doc: dict[str, Any], group: list[Match], now: datetime) -> dict[str, Any]:
    """What destinations receive."""
    first, rule = group[0], group[0].rule
    return {
        "alert_id": doc["alert_id"],
        "alert_type": first.alert_type,
        "rule_id": rule.rule_id,
        "title": first.title,
        "severity": first.severity,
        "match_count": doc["count"],
        "threshold": doc["threshold"],
        "dedup": doc["dedup"],
        "dedup_period_minutes": doc["period_minutes"],
        "created": doc["created"],
        "sent_after_match_at": now.isoformat(),
        # description(), runbook(), reference() of the first match, else the YAML's (engine.match_row).
        "description": first.description,
        "runbook": first.runbook,
        "reference": first.reference,
        "reports": rule.reports,
        "tags": rule.tags,
        "alert_context": first.context,
        "summary_attributes": _summary(rule.summary_attributes, group),
        # destinations() of the first match (None: the rule's OutputIds, else every destination), resolved
        # against ALERT_DESTINATIONS when sent (destinations.route).
        "destinations": first.destinations,
        "output_ids": rule.output_ids,
        "events": [_event(m.row) for m in group[:SAMPLE_EVENTS]],
    }


def _summary(attributes: list[str], group: list[Match]) -> dict[str, list[Any]]:
    """Each SummaryAttribute's distinct values over the batch's matches of the alert, as Panther's alert summary."""
    out: dict[str, list[Any]] = {}
    for attribute in attributes:
        values: list[Any] = []
        for m in group:
            found = m.summary.get(attribute)
            for value in found if isinstance(found, list) else [] if found is None else [found]:
                if value not in values:
                    values.append(value)
        out[attribute] = values[:SUMMARY_VALUES]
    return out


def _event(row: Any) -> dict[str, Any]:
    keys = ("id", "title", "serviceSource", "severity", "status", "alertWebUrl", "p_row_id", "p_event_time")
    return {k: (row.get(k).isoformat() if isinstance(row.get(k), datetime) else row.get(k))
            for k in keys if row.get(k) is not None}
