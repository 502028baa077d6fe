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

from shared.errors import GraphlakeError, PreconditionFailed
from shared.fanout import UNKNOWN_PROVIDER, EventSink, Fanout, ProviderCounts
from shared.graph import AlertsReader, CallStats, GraphCallFailed, graph_client
from shared.settings import Settings, Source
from shared.storage import Store
from shared.watermark import WatermarkStore
from shared.window import Window, plan_window, slices

log = logging.getLogger("graphlake.pull")

# A slice whose alerts shifted while it was paged (an alert updated mid-read leaves the filter, the rest move
# up a position) reads fewer distinct alerts than @odata.count promised; it is read again, this many times at most.
MAX_REREADS = 2


@dataclass
class SourceSummary:
    source_id: str
    window: str = ""
    slices_done: int = 0
    slices_planned: int = 0
    watermark_before: str | None = None
    watermark_after: str | None = None
    lag_seconds: float | None = None
    graph: CallStats = field(default_factory=CallStats)
    providers: dict[str, ProviderCounts] = field(default_factory=dict)
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
                   since: datetime | None = None, credential=None,
                   progress: ProgressCallback | None = None) -> list[SourceSummary]:
    """Pulls every source; one failing source never blocks the others (see raise_for_failures)."""
    summaries = []
    # One budget for the whole run: many sources must still end inside the function timeout.
    deadline = time.monotonic() + settings.pull_max_run_seconds
    for source in settings.sources():
        summary = await pull_source(source, settings, state, sink, now=now, since=since, credential=credential,
                                    progress=progress, deadline=deadline)
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
                      progress: ProgressCallback | None = None, deadline: float | None = None) -> SourceSummary:
    now = now or datetime.now(UTC)
    summary = SourceSummary(source_id=source.id)
    watermarks = WatermarkStore(state, source.id)
    overlap = timedelta(seconds=settings.pull_overlap_seconds)
    try:
        mark = watermarks.load()
        summary.watermark_before = summary.watermark_after = mark.position.isoformat() if mark.position else None
        window = plan_window(mark.position, now, settings, since=since)
        if window is None:
            return summary
        summary.window = str(window)
        planned = slices(window, settings.pull_slice_minutes)
        summary.slices_planned = len(planned)
        fanout = Fanout(sink, state, source, _hub_router(settings))
        summary.providers = fanout.counts
        deadline = deadline or time.monotonic() + settings.pull_max_run_seconds
        async with graph_client(source, settings, summary.graph, credential=credential) as client:
            reader = AlertsReader(client, settings, summary.graph, source)
            for piece in planned:
                if time.monotonic() > deadline:
                    break
                sent = await _read_slice(reader, fanout, piece, mark.recent, summary.graph, progress)
                sink.flush()
                position = max(piece.end, mark.position) if mark.position else piece.end
                mark = watermarks.advance(mark, position, sent, overlap)
                summary.watermark_after = position.isoformat()
                summary.slices_done += 1
    except PreconditionFailed:
        summary.error = "another run advanced the watermark first; this run stopped (its sends are duplicates)"
    except (GraphlakeError, GraphCallFailed) as exc:
        summary.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or outage in one source must not stop the others
        log.exception("source %s failed", source.id)
        summary.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    finally:
        if summary.watermark_after:
            summary.lag_seconds = (now - datetime.fromisoformat(summary.watermark_after)).total_seconds()
    return summary


async def _read_slice(reader: AlertsReader, fanout: Fanout, piece: Window, already_sent: set[tuple[str, str]],
                      stats: CallStats, progress: ProgressCallback | None) -> set[tuple[str, str]]:
    """Reads and sends one slice; returns the (id, lastUpdateDateTime) pairs it sent."""
    sent: set[tuple[str, str]] = set()
    seen: set[tuple[str, str]] = set()
    pulled_at = datetime.now(UTC).isoformat()
    for attempt in range(MAX_REREADS + 1):
        total = None
        async for page in reader.pages(piece.start, piece.end):
            total = page.total if total is None else total
            fresh = []
            for alert in page.alerts:
                pair = (str(alert.get("id")), str(alert.get("lastUpdateDateTime")))
                if pair in seen:  # read twice in this slice: a shifted page or a re-read
                    continue
                seen.add(pair)
                if pair in already_sent:
                    fanout.counts[alert.get("serviceSource") or UNKNOWN_PROVIDER].duplicates += 1
                    continue
                sent.add(pair)
                fresh.append(alert)
            fanout.send_page(fresh, pulled_at)
            if progress:
                progress(piece, len(page.alerts))
        if total is None or len(seen) >= total:
            break
        stats.rereads += 1
    return sent


def _hub_router(settings: Settings) -> Callable[[str], str]:
    hubs = settings.provider_hubs()
    return lambda provider: hubs.get(provider, settings.eventhub_name)
