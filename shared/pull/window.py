"""Which span of lastUpdateDateTime a run reads: [watermark - overlap, now - delay), cut into slices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.core.settings import Settings


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def plan_window(watermark: datetime | None, now: datetime, settings: Settings,
                since: datetime | None = None) -> Window | None:
    """The window of the next run, or None when nothing is old enough to read yet.

    Whole seconds only: Graph prints up to 7 fractional digits, and a boundary inside a second would depend on
    how each side rounds.
    """
    end = (now - timedelta(seconds=settings.pull_delay_seconds)).replace(microsecond=0)
    if since is not None:
        start = since
    elif watermark is None:
        start = end - timedelta(days=settings.pull_lookback_days)
    else:
        start = watermark - timedelta(seconds=settings.pull_overlap_seconds)
    start = start.replace(microsecond=0)
    return Window(start, end) if start < end else None


def slices(window: Window, slice_minutes: int) -> list[Window]:
    """Consecutive slices covering the window; the watermark advances after each, so a backfill that times out
    resumes where it stopped instead of starting over."""
    step = timedelta(minutes=slice_minutes)
    out, cursor = [], window.start
    while cursor < window.end:
        nxt = min(cursor + step, window.end)
        out.append(Window(cursor, nxt))
        cursor = nxt
    return out


def cut_for_pages(piece: Window, count: int | None, page_size: int) -> list[Window]:
    """`piece` cut at whole seconds into parts of about three quarters of a page each (alerts spread evenly), so
    that each part fits one response; no parts when it cannot be cut in two."""
    seconds = int((piece.end - piece.start).total_seconds())
    wanted = max(2, -(-(count or 0) * 4 // (page_size * 3)))
    parts = min(wanted, seconds)
    if parts < 2:
        return []
    step = seconds / parts
    cuts = [piece.start + timedelta(seconds=round(i * step)) for i in range(parts)] + [piece.end]
    return [Window(a, b) for a, b in zip(cuts, cuts[1:])]
