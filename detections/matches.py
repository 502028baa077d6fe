"""The `rule_matches` table: one row per rule match, in the lake's layout, so `graphlake search` covers it.

A match keeps the matched row's p_ fields (p_event_time, so it lands in the day partition of the alert it matched,
p_log_type, p_source_*, the p_any_* indicator lists) and its identifying columns, with Panther's rule-match
fields: p_rule_id, p_rule_severity, p_alert_id, p_alert_severity, p_alert_context (JSON), p_rule_tags,
p_rule_reports (JSON). p_row_id is the match id (rule + matched row version), so a redelivered batch overwrites
its file, and the views deduplicate what it does not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from detections.engine import Match, row_text, row_id
from normalizers.indicators import INDICATOR_COLUMNS
from shared.land.lake_writer import write_table
from shared.core.storage import Store

TABLE = "rule_matches"
SCHEDULED_LOG_TYPE = "Graphlake.ScheduledRule"

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_STRINGS = pa.list_(pa.string())
# The matched row's identifying columns, copied as they are (`id` beside them: engine.row_id).
_ROW_STRINGS = ("tenantId", "serviceSource", "severity", "status", "alertWebUrl")

SCHEMA = pa.schema([
    pa.field("p_row_id", pa.string(), nullable=False),
    pa.field("p_event_time", _TIMESTAMP, nullable=False),
    pa.field("p_parse_time", _TIMESTAMP, nullable=False),
    pa.field("p_log_type", pa.string()),
    pa.field("p_source_id", pa.string()),
    pa.field("p_source_label", pa.string()),
    pa.field("p_matched_row_id", pa.string()),
    pa.field("p_rule_id", pa.string(), nullable=False),
    pa.field("p_rule_severity", pa.string()),
    pa.field("p_rule_tags", _STRINGS),
    pa.field("p_rule_reports", pa.string()),
    pa.field("p_alert_id", pa.string()),
    pa.field("p_alert_severity", pa.string()),
    pa.field("p_alert_context", pa.string()),
    pa.field("title", pa.string()),
    pa.field("dedup", pa.string()),
    pa.field("id", pa.string()),
    *(pa.field(name, pa.string()) for name in _ROW_STRINGS),
    pa.field("lastUpdateDateTime", _TIMESTAMP),
    *(pa.field(name, _STRINGS) for name in INDICATOR_COLUMNS),
])


def match_rows(matches: list[Match], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for m in matches:
        row, rule = m.row, m.rule
        event_time = row.get("p_event_time")
        rows.append({
            "p_row_id": m.match_id,
            "p_event_time": event_time if isinstance(event_time, datetime) else now,
            "p_parse_time": now,
            "p_log_type": row_text(row.get("p_log_type")) or SCHEDULED_LOG_TYPE,
            "p_source_id": row_text(row.get("p_source_id")),
            "p_source_label": row_text(row.get("p_source_label")),
            "p_matched_row_id": row_text(row.get("p_row_id")),
            "p_rule_id": rule.rule_id,
            "p_rule_severity": rule.severity,
            "p_rule_tags": rule.tags or None,
            "p_rule_reports": orjson.dumps(rule.reports).decode() if rule.reports else None,
            "p_alert_id": m.alert_id or None,
            "p_alert_severity": m.severity,
            "p_alert_context": orjson.dumps(m.context, default=str).decode(),
            "title": m.title,
            "dedup": m.dedup,
            "id": row_id(row),
            **{name: row_text(row.get(name)) for name in _ROW_STRINGS},
            "lastUpdateDateTime": row.get("lastUpdateDateTime") if isinstance(row.get("lastUpdateDateTime"),
                                                                               datetime) else None,
            **{name: _strings(row.get(name)) for name in INDICATOR_COLUMNS},
        })
    return rows


def write_matches(lake: Store, matches: list[Match], now: datetime) -> list[str]:
    if not matches:
        return []
    table = pa.Table.from_pylist(match_rows(matches, now), schema=SCHEMA)
    return write_table(lake, table, table_name=TABLE)


def _strings(value: Any) -> list[str] | None:
    if not value:
        return None
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
