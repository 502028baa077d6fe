"""One pull run: for each source, read the window slice by slice, fan out, and advance the watermark.

Order of events within a slice: read every page, send every alert (Event Hubs acknowledges each batch), only then
advance the watermark. A run that dies part-way leaves the watermark at the last completed slice, so the next run
re-reads at most one slice; the re-sent versions carry the same p_row_id and deduplicate in the lake.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

import orjson

from shared.core import health
from shared.core.errors import GraphlakeError, PreconditionFailed, one_line
from shared.pull.confirmed import MAX_READS, ConfirmedReader, service_source_of
from shared.pull.fanout import UNKNOWN_PROVIDER, EventSink, Fanout, ProviderCounts, hub_router
from shared.pull.graph import AlertsReader, Backoff, CallStats, GraphCallFailed, GraphTime, graph_client
from shared.core.settings import Settings, Source
from shared.core.storage import Store
from shared.pull.watermark import Sent, Watermark, WatermarkStore
from shared.pull.window import Window, plan_window, slices

log = logging.getLogger("graphlake.pull")


@dataclass
class SourceSummary:
    source_id: str
    window: str = ""
    slices_done: int = 0
    slices_planned: int = 0
    watermark_before: str | None = None
    watermark_after: str | None = None
    lag_seconds: float | None = None
    # Set when a backfill started after the stored watermark: the span it did not read, which keeps the watermark.
    unread_gap: str | None = None
    graph: CallStats = field(default_factory=CallStats)
    providers: dict[str, ProviderCounts] = field(default_factory=dict)
    # Slices sent but not shown complete; the watermark stops before the first of them.
    unconfirmed_slices: int = 0
    # Set when the stored watermark lay ahead of this run's clock (a run on a clock that was ahead, or an edited
    # blob): by how much, and where this run put it back to before reading.
    watermark_ahead_seconds: float | None = None
    watermark_repaired_to: str | None = None
    # Graph's clock as the Date header of the run's first answer gave it, and how far this run's clock was ahead of
    # it (negative: behind); or, when that answer had no usable Date, why (the watermark then follows this clock).
    graph_date: str | None = None
    clock_skew_seconds: float | None = None
    graph_date_problem: str | None = None
    error: str | None = None

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.providers.values())

    def to_json(self) -> str:
        providers = {name: asdict(counts) for name, counts in self.providers.items()}
        doc = asdict(replace(self, providers={})) | {"providers": providers, "sent": self.sent}
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode()


class PullFailed(GraphlakeError):
    """At least one source failed; the others ran. The message lists each failure."""


ProgressCallback = Callable[[Window, int], None]


async def pull_all(settings: Settings, state: Store, sink: EventSink, *, now: datetime | None = None,
                   since: datetime | None = None, credential=None, progress: ProgressCallback | None = None,
                   clock: Callable[[], float] = time.monotonic, backoff: Backoff = Backoff()) -> list[SourceSummary]:
    """Pulls every source; one failing source never blocks the others (see raise_for_failures)."""
    summaries = []
    # One budget for the whole run: many sources must still end inside the function timeout.
    deadline = clock() + settings.pull_max_run_seconds
    for source in settings.sources():
        summary = await pull_source(source, settings, state, sink, now=now, since=since, credential=credential,
                                    progress=progress, deadline=deadline, clock=clock, backoff=backoff)
        log.info("graphlake.pull.summary %s", summary.to_json())
        summaries.append(summary)
    return summaries


def raise_for_failures(summaries: list[SourceSummary]) -> None:
    """Fails the invocation when a source failed, so monitoring sees it; the other sources have already run."""
    failures = [f"{s.source_id}: {s.error}" for s in summaries if s.error]
    if failures:
        raise PullFailed("; ".join(failures))


async def pull_source(source: Source, settings: Settings, state: Store, sink: EventSink, *,
                      now: datetime | None = None, since: datetime | None = None, credential=None,
                      progress: ProgressCallback | None = None, deadline: float | None = None,
                      clock: Callable[[], float] = time.monotonic, backoff: Backoff = Backoff()) -> SourceSummary:
    """`clock` measures the run's budget against `deadline` (seconds on the same clock)."""
    now = now or datetime.now(UTC)
    started = time.monotonic()  # with `now`, this run's clock at any later moment (see _record_graph_time)
    reader: AlertsReader | None = None
    summary = SourceSummary(source_id=source.id)
    watermarks = WatermarkStore(state, source.id)
    overlap = timedelta(seconds=settings.pull_overlap_seconds)
    try:
        mark = watermarks.load()
        summary.watermark_before = summary.watermark_after = mark.position.isoformat() if mark.position else None
        if mark.position is not None and mark.position > now:
            mark = _repair_ahead(watermarks, mark, now, overlap, summary)
        window = plan_window(mark.position, now, settings, since=since)
        if window is None:
            return summary
        summary.window = str(window)
        # A backfill (--since) that starts after the stored watermark leaves a span no run has read: moving the
        # watermark to the backfill's end would skip that span for good, so only runs that read on from the
        # watermark advance it.
        if mark.position is not None and window.start > mark.position - overlap:
            summary.unread_gap = str(Window(mark.position - overlap, window.start))
            log.warning("source %s: backfill from %s leaves %s unread; the watermark stays at %s for the next runs",
                        source.id, window.start.isoformat(), summary.unread_gap, mark.position.isoformat())
        planned = slices(window, settings.pull_slice_minutes)
        summary.slices_planned = len(planned)
        fanout = Fanout(sink, state, source, hub_router(settings))
        summary.providers = fanout.counts
        deadline = deadline if deadline is not None else clock() + settings.pull_max_run_seconds
        async with graph_client(source, settings, summary.graph, credential=credential, backoff=backoff) as client:
            reader = AlertsReader(client, settings, summary.graph, source, backoff)
            for piece in planned:
                if clock() > deadline:
                    break
                sent, unconfirmed = await _read_slice(reader, fanout, piece, mark, summary.graph, progress)
                sink.flush()
                summary.slices_done += 1
                if unconfirmed:
                    # Sent, but not shown complete: the watermark stays before it, so the next run reads it again.
                    summary.unconfirmed_slices += 1
                    log.warning("source %s: slice %s could not be confirmed complete after %d reads; the watermark "
                                "stays at %s and the next run reads it again", source.id, piece, MAX_READS,
                                summary.watermark_after)
                if summary.unread_gap or summary.unconfirmed_slices:
                    continue
                position = max(piece.end, mark.position) if mark.position else piece.end
                position = _within_graph_clock(position, reader.first_answer, source.id)
                mark = watermarks.advance(mark, position, sent, overlap)
                summary.watermark_after = position.isoformat()
    except PreconditionFailed:
        summary.error = "another run advanced the watermark first; this run stopped (its sends are duplicates)"
    except (GraphlakeError, GraphCallFailed) as exc:
        summary.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or outage in one source must not stop the others
        log.exception("source %s failed", source.id)
        summary.error = one_line(exc, with_type=True)
    finally:
        if reader is not None and reader.first_answer is not None:
            _record_graph_time(summary, reader.first_answer, now, started)
        if summary.watermark_after:
            summary.lag_seconds = (now - datetime.fromisoformat(summary.watermark_after)).total_seconds()
        _record_health(state, summary, now)
    return summary


def _within_graph_clock(position: datetime, answer: GraphTime | None, source_id: str) -> datetime:
    """The watermark never passes Graph's own time, as the Date of its first answer to this run gave it. Graph stamps
    lastUpdateDateTime by its clock: on a host whose clock is ahead of Graph's by more than the overlap, a watermark
    at this host's now would pass the versions Graph stamps after the read, and no later window would start early
    enough to read them. The Date is whole seconds and made after the query ran, so a host in step with Graph
    moves exactly as before; what Graph stamps between its query and its Date is seconds late, which the overlap
    reads next run like any late version. Also brings back a watermark a run without this bound left ahead of Graph.
    Without a usable Date (a proxy stripping it), this host's clock alone bounds the window, as before."""
    if answer is None or answer.date is None or position <= answer.date:
        return position
    log.warning("source %s: the watermark stops at Graph's time %s (its Date header), not %s: this host's clock is "
                "ahead of Graph's", source_id, answer.date.isoformat(), position.isoformat())
    return answer.date


def _record_graph_time(summary: SourceSummary, answer: GraphTime, now: datetime, started: float) -> None:
    if answer.date is None:
        summary.graph_date_problem = answer.problem
        log.warning("source %s: %s: the watermark follows this host's clock alone, unchecked against Graph's",
                    summary.source_id, answer.problem)
        return
    summary.graph_date = answer.date.isoformat()
    at_answer = now + timedelta(seconds=answer.received - started)
    summary.clock_skew_seconds = round((at_answer - answer.date).total_seconds(), 1)


def _repair_ahead(watermarks: WatermarkStore, mark: Watermark, now: datetime, overlap: timedelta,
                 summary: SourceSummary) -> Watermark:
    """A watermark ahead of the clock makes every window empty: no run would read again until the clock caught up,
    however far that is. It can only have come from a run whose clock was ahead (or an edit), and what that run
    read is complete only up to Graph's time when it ran, which was no later than now; so the watermark goes back
    to now minus the overlap, and the window re-reads from there. Versions Graph stamped before that and showed
    after the skewed run are the reconciliation's, like any late version."""
    repaired = (now - overlap).replace(microsecond=0)
    summary.watermark_ahead_seconds = (mark.position - now).total_seconds()
    summary.watermark_repaired_to = repaired.isoformat()
    log.error("source %s: the watermark %s was %.0f s ahead of the clock (%s); repaired to %s", summary.source_id,
              mark.position.isoformat(), summary.watermark_ahead_seconds, now.isoformat(), repaired.isoformat())
    # Written at once (If-Match, as every advance), so the repair stands even if no slice of this run completes.
    mark = watermarks.advance(mark, repaired, set(), overlap)
    summary.watermark_after = repaired.isoformat()
    return mark


def _record_health(state: Store, summary: SourceSummary, now: datetime) -> None:
    """The source's health record (see shared/core/health.py); failures in a row carry over from the previous one."""
    try:
        previous = health.previous(state, "pull", summary.source_id)
        failures = int(previous.get("consecutive_failures") or 0) + 1 if summary.error else 0
        # The last run that sent anything, kept through the runs that send nothing: status judges the normalizer
        # against it (a normalizer that stopped is no less stopped once the tenant goes quiet).
        last_sent, last_sent_versions = ((now.isoformat(), summary.sent) if summary.sent else
                                         (previous.get("last_sent"), previous.get("last_sent_versions")))
        health.record(state, "pull", summary.source_id, {
            "result": "failed" if summary.error else "ok", "consecutive_failures": failures,
            "error": summary.error, "watermark": summary.watermark_after, "lag_seconds": summary.lag_seconds,
            "unconfirmed_slices": summary.unconfirmed_slices, "sent": summary.sent,
            "window": summary.window, "slices_done": summary.slices_done, "slices_planned": summary.slices_planned,
            "unread_gap": summary.unread_gap, "watermark_ahead_seconds": summary.watermark_ahead_seconds,
            "watermark_repaired_to": summary.watermark_repaired_to, "last_sent": last_sent,
            "last_sent_versions": last_sent_versions, "graph_date": summary.graph_date,
            "clock_skew_seconds": summary.clock_skew_seconds, "graph_date_problem": summary.graph_date_problem},
            now=now)
    except Exception:  # noqa: BLE001 - the state store failing is already the run's error; the summary still goes out
        log.exception("source %s: the health record could not be written", summary.source_id)


async def _read_slice(reader: AlertsReader, fanout: Fanout, piece: Window, already_sent: Watermark,
                      stats: CallStats, progress: ProgressCallback | None) -> tuple[set[Sent], int]:
    """Reads and sends one slice (shared/pull/confirmed.py); returns the (id, serviceSource, lastUpdateDateTime)
    versions it sent and how many of its parts could not be confirmed complete (0: the whole slice was)."""
    sending = _SliceSender(fanout, already_sent, progress, datetime.now(UTC).isoformat())
    unconfirmed = await ConfirmedReader(reader, stats, sending.send_page).unconfirmed_parts(piece)
    return sending.sent, unconfirmed


class _SliceSender:
    """Sends each version a slice's reads show once: a re-read or a shifted page shows some again, and the
    previous run's overlap sent some already."""

    def __init__(self, fanout: Fanout, already_sent: Watermark, progress: ProgressCallback | None,
                 pulled_at: str) -> None:
        self._fanout = fanout
        self._already_sent = already_sent
        self._progress = progress
        self._pulled_at = pulled_at
        self._handled: set[Sent] = set()
        self.sent: set[Sent] = set()

    def send_page(self, part: Window, alerts: list) -> None:
        fresh = []
        for alert in alerts:
            # serviceSource too: one id under two products is two alerts, even at one lastUpdateDateTime.
            version = (str(alert.get("id")), service_source_of(alert), str(alert.get("lastUpdateDateTime")))
            if version in self._handled:
                continue
            self._handled.add(version)
            if self._already_sent.was_sent(version):
                self._fanout.counts[alert.get("serviceSource") or UNKNOWN_PROVIDER].duplicates += 1
                continue
            self.sent.add(version)
            fresh.append(alert)
        self._fanout.send_page(fresh, self._pulled_at)
        if self._progress:
            self._progress(part, len(alerts))
