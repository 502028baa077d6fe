"""`graphlake rules backtest`: the rules run over the lake, to tune a rule before it is enabled.

Real-time rules see every row (every version of every alert) of the tables of their LogTypes in the range, as the
normalizer would have shown them; scheduled rules run once over the whole range. For each rule: the matches, and
the alerts they would have made under its dedup string, DedupPeriodMinutes and Threshold (detections/dedup.py, the
live alerts' grouping, with periods counted in event time). Nothing is written and nothing is sent: the lake, the alert state and the destinations are untouched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from detections.alerts import alert_id
from detections.dedup import alert_periods
from detections.engine import Match, RuleFailure, context_of, evaluate
from detections.event import TableRows
from detections.loader import LOG_TYPES, RULE, SCHEDULED_RULE, RuleSet
from shared.core.errors import GraphlakeError, one_line

if TYPE_CHECKING:
    from shared.core.settings import LakeAccess

ROWS_PER_BATCH = 10_000


@dataclass
class BacktestAlert:
    """An alert the rule would have made: its id (as the live alert's, from the period's first match in event
    time), title, dedup string, first and last match of its period, and the matches it counted."""

    alert_id: str
    title: str
    dedup: str
    first_match: datetime
    last_match: datetime
    matches: int


@dataclass
class RuleBacktest:
    rule_id: str
    kind: str
    enabled: bool
    matches: int = 0
    alerts: int = 0
    errors: int = 0
    alert_list: list[BacktestAlert] = field(default_factory=list)


@dataclass
class Backtest:
    since: datetime
    until: datetime
    rows: int = 0
    table_rows: dict[str, int] = field(default_factory=dict)  # the rows read, by table
    rules: list[RuleBacktest] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)


def backtest(rule_set: RuleSet, lake_url: str, since: datetime, until: datetime, *,
             access: LakeAccess | None = None) -> Backtest:
    """Every rule of the set, enabled or not (a rule is backtested to decide whether to enable it)."""
    from detections.scheduled import evaluate_rows, run_query, with_empty_tables
    from shared.read.query import connect

    result = Backtest(since, until)
    connection = with_empty_tables(connect(lake_url, access=access))
    realtime = [r for r in rule_set.rules if r.kind == RULE]
    matches: dict[str, list[Match]] = defaultdict(list)
    tables = sorted({t for r in realtime for log_type in r.log_types for t in LOG_TYPES.get(log_type, ())})
    for table in (t for t in tables if t in connection.files):
        for batch in _batches(connection, table, since, until):
            result.rows += batch.num_rows
            result.table_rows[table] = result.table_rows.get(table, 0) + batch.num_rows
            evaluation = evaluate(realtime, TableRows(batch), context_of(rule_set))
            # A row would keep its whole batch in memory for the rest of the backtest: a failure keeps none, a match
            # only the event time its alert grouping reads.
            for failure in evaluation.failures:
                failure.row = None
            result.failures += evaluation.failures
            for m in evaluation.matches:
                m.row = {"p_event_time": m.row.get("p_event_time")}
                matches[m.rule.rule_id].append(m)
    for rule in (r for r in rule_set.rules if r.kind == SCHEDULED_RULE):
        try:
            evaluation = evaluate_rows(rule, run_query(rule, connection, since, until))
        except GraphlakeError as exc:
            result.failures.append(RuleFailure(rule.rule_id, None, one_line(exc)))
            continue
        result.failures += evaluation.failures
        matches[rule.rule_id] += evaluation.matches
    errors: dict[str, int] = defaultdict(int)
    for failure in result.failures:
        errors[failure.rule_id] += 1
    for rule in sorted(rule_set.rules, key=lambda r: r.rule_id):
        found = matches.get(rule.rule_id, [])
        made = _alerts(found, since) if rule.create_alert else []
        result.rules.append(RuleBacktest(rule.rule_id, rule.kind, rule.enabled, len(found), len(made),
                                       errors[rule.rule_id], made))
    return result


def _batches(connection: Any, table: str, since: datetime, until: datetime) -> Iterator[pa.RecordBatch]:
    """The table's rows in the range, a batch at a time; a file DuckDB cannot read is a one-line error naming the
    table, whether it fails the query or a batch as the rows stream (damage past the file's footer)."""
    try:
        yield from connection.con.sql(f"SELECT * FROM {table} WHERE p_event_time >= $since AND p_event_time < $until",
                                      params={"since": since, "until": until}).to_arrow_reader(ROWS_PER_BATCH)
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        raise GraphlakeError(f"cannot read {table}: {one_line(exc)}") from None


def _alerts(matches: list[Match], since: datetime) -> list[BacktestAlert]:
    """Alerts the rule's matches would have made, each dedup string grouped on its own, in order of their first
    match; a match without an event time counts at the start of the range."""
    if not matches:
        return []
    rule = matches[0].rule
    by_dedup: dict[str, list[tuple[datetime, Match]]] = defaultdict(list)
    for m in matches:
        moment = m.row.get("p_event_time")
        by_dedup[m.dedup].append((moment if isinstance(moment, datetime) else since, m))
    out = []
    for dedup, group in by_dedup.items():
        moments = [moment for moment, _ in group]
        for period, members in alert_periods(moments, rule.dedup_minutes, rule.threshold):
            times = sorted(moments[i] for i in members)
            first = group[min(members, key=lambda i: moments[i])][1]
            out.append(BacktestAlert(alert_id(rule.rule_id, dedup, period.opened.isoformat()), first.title, dedup,
                                     times[0], times[-1], len(members)))
    return sorted(out, key=lambda a: (a.first_match, a.alert_id))
