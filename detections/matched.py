"""What each rule has matched: one small marker per (rule, matched row version), so a version that comes back
(a lost watermark, `graphlake replay`, normalize run again, the reconciliation re-sending, a backfill over old days)
never counts into a second alert nor lands a second rule_matches row, however long after its dedup period.

`detections/matched/<rule id>/<match id>.json` (the match id hashes the rule id and the row's p_row_id). A batch
reads one marker per match and writes one per new match: its cost follows its own matches, never the history.

The marker is written last, once the match is counted into its alert, its rule_matches row is written and its
alert queued: a crash before that leaves the match unmarked, and the batch delivered again does it all again
(each step is idempotent), rather than skipping a match whose alert was never queued.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from detections.alerts import safe_name
from detections.engine import Match, row_text
from shared.core.storage import Store

PREFIX = "detections/matched/"


def marker_name(match: Match) -> str:
    return f"{PREFIX}{safe_name(match.rule.rule_id)}/{match.match_id}.json"


def unmatched(state: Store, matches: list[Match]) -> list[Match]:
    """The matches no earlier run has recorded: those to count and to land."""
    return [m for m in matches if state.read(marker_name(m)) is None]


def mark(state: Store, matches: list[Match], now: datetime) -> None:
    for m in matches:
        state.write(marker_name(m), orjson.dumps({
            "rule_id": m.rule.rule_id, "p_matched_row_id": row_text(m.row.get("p_row_id")), "p_alert_id": m.alert_id,
            "matched": now.isoformat()}))

