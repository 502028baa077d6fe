"""Scheduled rules: SQL over the lake for correlations over windows, each result row a match.

`NAME.sql` runs with DuckDB through `shared.read.query` (every table folder a view, `security_alerts` deduplicated on
p_row_id, `security_alerts_latest`, `security_alert_evidence`); `$since` and `$until` in the SQL are the lookback
window's bounds (now - LookbackMinutes, now). A rule runs when ScheduleMinutes have passed since its last run
(`detections/schedule/<rule id>.json`), so the timer can tick more often than any rule. Result rows go through
the optional NAME.py (rule, title, dedup, alert_context, ...) and then, like real-time matches, into alerts,
rule_matches and the outbox. A match's id comes from its row, so a correlation still true on the next run counts
into the same alert instead of a new one.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from detections.engine import Evaluation, RuleFailure, match_row
from detections.event import EventContext, RuleEvent
from detections.helpers import LOOKUPS
from detections.loader import LOG_TYPES, SCHEDULED_RULE, Rule
from shared.core import health
from shared.core.errors import GraphlakeError, one_line
from shared.core.storage import Store

if TYPE_CHECKING:
    from shared.core.settings import LakeAccess

SCHEDULE_PREFIX = "detections/schedule/"
_PARAMETER = re.compile(r"\$(since|until)\b")


@dataclass
class ScheduledReport:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not due yet
    matches: dict[str, int] = field(default_factory=dict)
    failures: list[RuleFailure] = field(default_factory=list)
    undelivered: int = 0


def run_query(rule: Rule, connection: Any, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The rule's result rows as mappings; GraphlakeError (one line) if the SQL fails."""
    names = set(_PARAMETER.findall(rule.sql))
    parameters = {name: {"since": since, "until": until}[name] for name in names}
    cursor = connection.run(rule.sql, parameters or None)
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def with_empty_tables(connection: Any) -> Any:
    """The connection with every table of graphlake's log types that the lake has not landed yet (a tenant that
    streams no risk events, or alerts only) as an empty table of its schema: a correlation over it finds nothing,
    which is not the rule's failure."""
    from normalizers import log_schema, schema
    from normalizers.names import TABLE

    for tables in LOG_TYPES.values():
        for table in tables:
            if table not in connection.files:
                connection.con.register(table, (schema.SCHEMA if table == TABLE else log_schema.SCHEMA).empty_table())
    return connection


def evaluate_rows(rule: Rule, rows: list[dict[str, Any]]) -> Evaluation:
    result = Evaluation()
    # The rule set's lookup tables, which the loader gave the rule's module (`event.lookup`, `p_enrichment`).
    context = EventContext(lookups=getattr(rule.module, LOOKUPS, None))
    for row in rows:
        result.rows += 1
        # No data model: Panther gives none to scheduled rules, whose rows are a query's, not a log type's.
        match, failure = match_row(rule, RuleEvent(row, context, data_model=None), row)
        if failure is not None:
            result.failures.append(failure)
        elif match is not None:
            result.matches.append(match)
    return result


def run_due(detector: Any, lake_url: str, state: Store, lake: Store, now: datetime, *,
            force: bool = False, access: LakeAccess | None = None) -> ScheduledReport:
    """Every enabled scheduled rule whose schedule is due (or all, with force), then the outbox."""
    from detections.realtime import deliver_queued, settle
    from shared.read.query import connect

    report = ScheduledReport()
    due = [r for r in detector.rules.enabled(SCHEDULED_RULE) if force or _is_due(state, r, now)]
    report.skipped = [r.rule_id for r in detector.rules.enabled(SCHEDULED_RULE) if r not in due]
    connection = None
    for rule in due:
        try:
            connection = connection or with_empty_tables(connect(lake_url, access=access))
            if not connection.files:
                break  # an empty lake (nothing landed yet): nothing to correlate, and not a rule's failure
            rows = run_query(rule, connection, now - timedelta(minutes=rule.lookback_minutes), now)
        except GraphlakeError as exc:
            failure = RuleFailure(rule.rule_id, None, one_line(exc))
            report.failures.append(failure)
            health.record(state, "detections", f"scheduled-{rule.rule_id}", {
                "result": "rule_errors", "rows": 0, "matches": 0, "rule_errors": 1, "errors": [str(failure)]}, now=now)
            continue
        evaluation = evaluate_rows(rule, rows)
        report.failures += evaluation.failures
        report.matches[rule.rule_id] = len(evaluation.matches)
        # Delivery waits for the end of the run: one pass over the outbox for every rule's alerts.
        settle(detector, evaluation, lake=lake, state=state, now=now, component_key=f"scheduled-{rule.rule_id}",
               deliver=False)
        state.write(f"{SCHEDULE_PREFIX}{rule.rule_id}.json", orjson.dumps({"last_run": now.isoformat()}))
        report.ran.append(rule.rule_id)
    if detector.sends:
        report.undelivered = deliver_queued(detector, state, now)
    return report


def test_matches(rule: Rule, logs: list[dict], now: str | None) -> list[Any]:
    """The matches of a scheduled rule over a lake holding just `logs` (Graph alerts and Azure Monitor records): its
    Tests run this."""
    with _test_lake(logs) as connection:
        if now:
            until = datetime.fromisoformat(now)
        else:  # just after the latest alert or record of the test
            until = max(connection.execute(f"SELECT max(p_event_time) FROM {table}").fetchone()[0]
                        for table in connection.files) + timedelta(minutes=1)
        rows = run_query(rule, connection, until - timedelta(minutes=rule.lookback_minutes), until)
    evaluation = evaluate_rows(rule, rows)
    if evaluation.failures:
        raise ValueError(str(evaluation.failures[0]))
    return evaluation.matches


# One alert, so the lake has its tables and views for a query to be checked against.
_CHECK_ALERT = {"id": "graphlake-query-check", "tenantId": "t", "title": "check", "severity": "low", "status": "new",
                "createdDateTime": "2000-01-01T00:00:00Z", "lastUpdateDateTime": "2000-01-01T00:00:00Z"}


def explain_error(sql: str) -> str | None:
    """Why a scheduled query cannot run on the lake, or None: it is planned (EXPLAIN, not run) in the sandbox
    scheduled rules run in, over a lake of one alert, so a table, column or function the lake lacks is caught."""
    parameters = {name: datetime(2000, 1, 1) for name in set(_PARAMETER.findall(sql))}
    with _test_lake([_CHECK_ALERT]) as connection:
        try:
            connection.run(f"EXPLAIN {sql}", parameters or None)
        except GraphlakeError as exc:
            return one_line(exc)
    return None


@contextlib.contextmanager
def _test_lake(logs: list[dict]) -> Iterator[Any]:
    """A sandboxed connection to a throwaway lake of `logs`, each landed by its normalizer (alerts, Azure Monitor
    records)."""
    from detections.testing import TEST_PARSE_TIME, is_log_record
    from shared.land.normalize import LOGS, InboundEvent, normalize_events
    from shared.read.query import connect
    from shared.core.storage import LocalStore

    with tempfile.TemporaryDirectory(prefix="graphlake-rule-test-") as work:
        lake, state = LocalStore(f"{work}/lake"), LocalStore(f"{work}/state")
        records = [log for log in logs if isinstance(log, dict) and is_log_record(log, list(LOG_TYPES))]
        alerts = [log for log in logs if not any(log is r for r in records)]
        # No detector: a rule's test lake runs no rules while it lands.
        landed = [normalize_events([InboundEvent(orjson.dumps(log)) for log in alerts], lake=lake, state=state,
                                   parse_time=TEST_PARSE_TIME)]
        if records:
            landed.append(normalize_events([InboundEvent(orjson.dumps({"records": records}))], lake=lake,
                                           state=state, parse_time=TEST_PARSE_TIME, family=LOGS))
        quarantined = sum(len(result.quarantined) for result in landed)
        if quarantined or not sum(result.rows for result in landed):
            raise ValueError(f"{quarantined} of the test's Logs are not alerts or Azure Monitor records the "
                             "normalizers take")
        yield with_empty_tables(connect(lake.url))


def _is_due(state: Store, rule: Rule, now: datetime) -> bool:
    found = state.read(f"{SCHEDULE_PREFIX}{rule.rule_id}.json")
    if found is None:
        return True
    last = datetime.fromisoformat(orjson.loads(found.data)["last_run"])
    # A tick early by seconds still runs: timers fire close to, not exactly at, their minute.
    return now >= last + timedelta(minutes=rule.schedule_minutes) - timedelta(seconds=30)


def run_scheduled(detector: Any, lake_url: str, state: Store, lake: Store, now: datetime | None = None, *,
                  access: LakeAccess | None = None) -> ScheduledReport | None:
    """The run_scheduled_rules timer's work: due scheduled rules, then alerts still waiting for delivery. None when
    detections are off (no detector)."""
    import logging
    from datetime import UTC

    if detector is None:
        return None
    report = run_due(detector, lake_url, state, lake, now or datetime.now(UTC), access=access)
    for failure in report.failures:
        logging.getLogger("graphlake.detections").error("graphlake.detections %s", failure)
    return report
