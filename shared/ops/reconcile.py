"""The scheduled reconciliation: the audit, unattended, over the last RECONCILE_LOOKBACK_HOURS, repairing what it
finds, with one health record per source.

Its late finds (missing versions older than the pull's watermark minus overlap, which no pull will read again) are
alerts Graph showed later than the pull's overlap allowed for: the measure of how late Graph really is, and the
signal to raise PULL_OVERLAP_SECONDS when they keep coming.

Re-sent is not landed: through Event Hubs a re-sent version lands only if the normalizer consumes the hub. So the
reconciliation remembers what it re-sent (`reconcile/resent/<source>.json` in the state store, one entry per alert)
and looks for it in the lake at the end of each run, its own re-sends (landed at once by an in-process sink) and
the previous run's. An alert re-sent by two runs in a row whose re-sent version is still not in the lake is "sent
but not landed": the normalizer is not consuming (its trigger stopped, a wrong consumer group), which no re-send
repairs, and the record says so, naming the hub and the consumer group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from shared.core import health
from shared.ops.audit import AuditReport, GraphVersion, audit_all, lake_versions
from shared.core.errors import GraphlakeError, one_line
from shared.pull.fanout import UNKNOWN_PROVIDER, EventSink
from shared.pull.graph import Backoff
from shared.core.settings import Settings
from shared.core.storage import Store

log = logging.getLogger("graphlake.reconcile")
COMPONENT = "reconcile"
RESENT_PREFIX = "reconcile/resent/"
# Enough to show a normalizer that lands nothing; what a long outage leaves missing beyond it is still re-sent every
# run and counted in `resent`, only not followed one by one (the blob is rewritten every run).
MAX_FOLLOWED = 5000


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
        landing = follow_landing(state, lake, report, now)
        health.record(state, COMPONENT, report.source_id, health_doc(report, landing, settings), now=now)
        log.info("graphlake.reconcile.summary %s", report.to_json())
        if report.late_found:
            log.warning("source %s: %d alert versions arrived in Graph later than the pull's overlap "
                        "(PULL_OVERLAP_SECONDS=%d) and were sent again by the reconciliation", report.source_id,
                        report.late_found, settings.pull_overlap_seconds)
        if landing.not_landed:
            log.error("source %s: %d versions sent but not landed since %s, hub %s consumer group %s",
                      report.source_id, len(landing.not_landed), landing.not_landed_since, settings.eventhub_name,
                      settings.eventhub_consumer_group)
    return reports


@dataclass
class Landing:
    """What became of the versions the reconciliation re-sent, judged at the end of a run."""

    landed: int = 0  # re-sent versions (this run's or the previous run's) found in the lake
    repaired: int = 0  # of this run's missing versions, those in the lake now
    # follow_key of an alert -> its re-sent version, not landed
    followed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def not_landed(self) -> list[dict[str, Any]]:
        """Alerts re-sent by two runs in a row, their re-sent version still not in the lake."""
        return [entry for entry in self.followed.values() if entry["runs"] >= 2]

    @property
    def not_landed_since(self) -> str | None:
        return min((entry["first_sent"] for entry in self.not_landed), default=None)


def follow_landing(state: Store, lake: Store, report: AuditReport, now: datetime) -> Landing:
    """Looks for the previous run's re-sent versions and this run's in the lake, and keeps what did not land for
    the next run. A run that failed changes nothing (it may not have re-sent what it meant to)."""
    name = f"{RESENT_PREFIX}{report.source_id}.json"
    try:
        found = state.read(name)
        stored: dict[str, dict[str, Any]] = orjson.loads(found.data) if found else {}
        if report.error:
            return Landing(followed=stored)
        parsed = [(_version(item), item[1]) for item in stored.items()]
        previous = {follow_key(version): version for version, _ in parsed}
        entries = {follow_key(version): entry for version, entry in parsed}
        sent_now = {follow_key(v): v for v in report.resent}
        versions = list(previous.values()) + list(sent_now.values())
        in_lake = lake_versions(lake, versions) if versions else {}

        def landed(version: GraphVersion) -> bool:
            return version.held_in(in_lake.get(version.key, ()))

        landing = Landing(landed=len({(v.key, v.row_id) for v in versions if landed(v)}))
        landing.repaired = report.repaired - sum(1 for v in sent_now.values() if not landed(v))
        for key, version in sent_now.items():
            if landed(version):
                continue
            before = entries.get(key)
            # Consecutive runs only: an alert whose earlier re-send landed starts again at one.
            again = before is not None and not landed(previous[key])
            landing.followed[key] = {
                "alert_id": version.alert_id, "service_source": version.service_source,
                "row_id": version.row_id, "legacy_row_id": version.legacy_row_id,
                "last_update": version.last_update, "provider": version.provider,
                "created_day": version.created_day.isoformat() if version.created_day else None,
                "first_sent": before["first_sent"] if again else now.isoformat(),
                "runs": before["runs"] + 1 if again else 1}
        if len(landing.followed) > MAX_FOLLOWED:
            oldest = sorted(landing.followed.items(), key=lambda item: item[1]["first_sent"])[:MAX_FOLLOWED]
            landing.followed = dict(oldest)
        state.write(name, orjson.dumps(landing.followed))
        return landing
    except Exception as exc:  # noqa: BLE001 - the other sources still run; this one's record says why
        log.exception("source %s: the landing of re-sent versions could not be checked", report.source_id)
        report.error = report.error or (f"the landing of re-sent versions could not be checked: "
                                        f"{one_line(exc, with_type=True)}")
        return Landing()


def follow_key(version: GraphVersion) -> str:
    """An alert's key in the followed blob: one id can be two alerts, under two serviceSources."""
    return f"{version.alert_id}\x1f{version.service_source}"


def _version(item: tuple[str, dict[str, Any]]) -> GraphVersion:
    """A followed entry as the version it was re-sent as. Entries written before serviceSource was part of an
    alert's identity are keyed by the id alone and have no service_source: their provider names it (but for
    "unknown", which stood for none)."""
    key, entry = item
    created = entry.get("created_day")
    provider = entry["provider"]
    source = entry.get("service_source", "" if provider == UNKNOWN_PROVIDER else provider)
    return GraphVersion(entry.get("alert_id", key), entry["last_update"], provider, entry["row_id"],
                        date.fromisoformat(created) if created else None, source, entry.get("legacy_row_id"))


def health_doc(report: AuditReport, landing: Landing, settings: Settings) -> dict:
    """The health contract's fields for component `reconcile`, and what else an operator needs to act on them."""
    return {
        "result": "failed" if report.error or not report.confirmed else "ok",
        "missing": report.missing,
        "late_found": report.late_found,
        "repaired": landing.repaired,
        "resent": len(report.resent),
        "landed": landing.landed,
        # Neither re-sent nor found landed: updated since the audit read them (the pull's then), or not sent.
        "unsent": report.missing - report.repaired,
        "pending": len(landing.followed),
        "not_landed": len(landing.not_landed),
        "not_landed_since": landing.not_landed_since,
        "eventhub": settings.eventhub_name,
        "consumer_group": settings.eventhub_consumer_group,
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
