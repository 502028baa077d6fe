"""The scheduled reconciliation: the audit, unattended, over the last RECONCILE_LOOKBACK_HOURS, repairing what it
finds, with one health record per source.

Its late finds (missing versions older than the pull's watermark minus overlap, which no pull will read again) are
alerts Graph showed later than the pull's overlap allowed for: the measure of how late Graph really is, and the
signal to raise PULL_OVERLAP_SECONDS when they keep coming.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from shared.core import health
from shared.ops.audit import AuditReport, audit_all
from shared.core.errors import GraphlakeError
from shared.pull.fanout import EventSink
from shared.pull.graph import Backoff
from shared.core.settings import Settings
from shared.core.storage import Store

log = logging.getLogger("graphlake.reconcile")
COMPONENT = "reconcile"


class ReconcileFailed(GraphlakeError):
    """At least one source could not be reconciled; the others were. The message lists each failure."""


async def reconcile_all(settings: Settings, state: Store, lake: Store, sink: EventSink, *,
                        now: datetime | None = None, credential=None,
                        backoff: Backoff = Backoff()) -> list[AuditReport]:
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=settings.reconcile_lookback_hours)
    reports = await audit_all(settings, state, lake, since=since, now=now, sink=sink, credential=credential,
                              backoff=backoff)
    for report in reports:
        health.record(state, COMPONENT, report.source_id, health_doc(report), now=now)
        log.info("graphlake.reconcile.summary %s", report.to_json())
        if report.late_found:
            log.warning("source %s: %d alert versions arrived in Graph later than the pull's overlap "
                        "(PULL_OVERLAP_SECONDS=%d) and were repaired by the reconciliation", report.source_id,
                        report.late_found, settings.pull_overlap_seconds)
    return reports


def health_doc(report: AuditReport) -> dict:
    """The health contract's fields for component `reconcile`, and what else an operator needs to act on them."""
    return {
        "result": "failed" if report.error or not report.confirmed else "ok",
        "missing": report.missing,
        "late_found": report.late_found,
        "repaired": report.repaired,
        "error": report.error or (None if report.confirmed else "Graph's alerts shifted while paged: the window "
                                  "could not be read completely; the next run tries again"),
        "behind": sum(1 for f in report.findings if f.kind == "behind"),
        "alerts": report.alerts,
        "window": report.window,
        "watermark": report.watermark,
        "late": [[f.alert_id, f.last_update] for f in report.findings if f.late][:20],
    }


def raise_for_failures(reports: list[AuditReport]) -> None:
    failures = [f"{r.source_id}: {r.error}" for r in reports if r.error]
    if failures:
        raise ReconcileFailed("; ".join(failures))
