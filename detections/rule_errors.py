"""A rule that raises, as Panther handles it: a rule-error alert to the destinations, one per rule and error type
per dedup period, and a row in the lake's `rule_errors` table per row it raised on.

A failure becomes a match of its own (`alert_type: RULE_ERROR`, dedup `ruleError:<error type>`, threshold 1), so
it takes the same path as a rule's matches: the alert state counts it, the matched markers keep a redelivered batch
from counting it twice, the outbox sends it. Its id hashes the rule, "error" and the row's p_row_id.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pyarrow as pa

from detections.engine import Match, RuleFailure, row_text, match_id, row_id
from detections.loader import Rule
from shared.core.storage import Store
from shared.land.lake_writer import write_table

TABLE = "rule_errors"
ALERT_TYPE = "RULE_ERROR"
_TIMESTAMP = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema([
    pa.field("p_row_id", pa.string(), nullable=False),
    pa.field("p_event_time", _TIMESTAMP, nullable=False),
    pa.field("p_parse_time", _TIMESTAMP, nullable=False),
    pa.field("p_log_type", pa.string()),
    pa.field("p_rule_id", pa.string(), nullable=False),
    pa.field("p_alert_id", pa.string()),
    pa.field("p_matched_row_id", pa.string()),
    pa.field("id", pa.string()),  # engine.row_id: the Graph alert the rule raised on, or the log record's p_row_id
    pa.field("error_type", pa.string()),
    pa.field("error", pa.string()),
])


def error_matches(failures: list[RuleFailure], rules: list[Rule]) -> list[Match]:
    """The failures on a row as rule-error matches (a failure without a row, a query's, has its health record)."""
    by_id = {r.rule_id: r for r in rules}
    out = []
    for failure in failures:
        rule = by_id.get(failure.rule_id)
        if rule is None or failure.row is None:
            continue
        error_type = failure.error_type or "Error"
        # Threshold 1: an error alerts at once, whatever the rule's threshold for its matches.
        as_error = dataclasses.replace(rule, threshold=1)
        out.append(Match(
            rule=as_error, row=failure.row, title=f"Rule error: {rule.rule_id} raised {error_type}",
            dedup=f"ruleError:{error_type}", severity=rule.severity,
            context={"error_type": error_type, "error": failure.error, "graph_alert_id": failure.alert_id},
            match_id=match_id(f"{rule.rule_id}\0error", failure.row), description=failure.error,
            runbook=f"Fix rule {rule.rule_id} ({rule.path.name}); the rows it raised on are in the rule_errors table.",
            reference="", alert_type=ALERT_TYPE))
    return out


def error_rows(matches: list[Match], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for m in matches:
        event_time = m.row.get("p_event_time")
        rows.append({
            "p_row_id": m.match_id, "p_event_time": event_time if isinstance(event_time, datetime) else now,
            "p_parse_time": now, "p_log_type": row_text(m.row.get("p_log_type")), "p_rule_id": m.rule.rule_id,
            "p_alert_id": m.alert_id or None, "p_matched_row_id": row_text(m.row.get("p_row_id")),
            "id": row_id(m.row), "error_type": m.context["error_type"], "error": m.context["error"]})
    return rows


def write_errors(lake: Store, matches: list[Match], now: datetime) -> list[str]:
    if not matches:
        return []
    return write_table(lake, pa.Table.from_pylist(error_rows(matches, now), schema=SCHEMA), table_name=TABLE)
