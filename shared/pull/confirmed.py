"""Reading a window of Graph's alerts until it is shown complete: the one rule of completeness, for the pull (which
sends what it reads) and the audit (which compares it with the lake).

The rule: a window is complete when one response holds @odata.count alerts. A larger window is cut at whole
seconds into parts that fit one response, each read the same way.

Why one response: Graph evaluates the query again for every page and promises no snapshot across them. An alert
updated between two page requests leaves the window and the alerts after it move up a page, out of reach of the
next request; an unstable order does the same without any update. No count can show every such tear (one alert
leaving and a late one entering between the same two requests leave the count as it was), while a single response
is one evaluation of the query. So when the first page says there are more, the alerts it holds are handed on and
the window is cut into parts of about three quarters of a page (shared/pull/window.py, cut_for_pages).

Only a part too short to cut (more alerts in one second than a page holds) is paged, and then judged on its own
read: every page reported the same @odata.count, no alert came twice, and it read that many distinct alerts. Never
across reads: a version read earlier may have left the window since, and counting it would vouch for an alert that
was missed. A read that is not complete is repeated, MAX_READS reads in all.

An item without an id counts as one item of the response; but no repetition of it can be seen, so a read that took
more than one page and met one is not complete.

An alert is its (id, serviceSource): two products can report one id (alerts_v2 does not rule it out), and Graph
counts them as two items. Counting ids alone would take the second for a repeat, so no read of its window could
ever be complete and the watermark would stay before it for good.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing

from shared.core.json_text import as_text
from shared.pull.graph import AlertsReader, CallStats
from shared.pull.window import Window, cut_for_pages

# Reads of one window (or part of it) before it is given up as not shown complete.
MAX_READS = 3

# Called with every page read (of a window or a part of it), complete or not: the caller decides what to keep.
PageHandler = Callable[[Window, list], None]


class ConfirmedReader:
    def __init__(self, reader: AlertsReader, stats: CallStats, on_page: PageHandler) -> None:
        self._reader = reader
        self._stats = stats
        self._on_page = on_page
        # Items without an id in the reads shown complete (the normalizer quarantines them; the lake cannot hold
        # them).
        self.without_id = 0

    async def unconfirmed_parts(self, window: Window) -> int:
        """Reads `window` by the rule above; the number of its parts never shown complete (0: all of it was)."""
        cuttable = bool(cut_for_pages(window, None, self._reader.page_size))
        for attempt in range(MAX_READS):
            if attempt:
                self._stats.rereads += 1
            complete, count = await self._read_once(window, first_page_only=cuttable)
            if complete:
                return 0
            if count is None:  # no @odata.count to judge by: cutting cannot help, paging is all there is
                cuttable = False
            elif cuttable:
                self._stats.splits += 1
                return sum([await self.unconfirmed_parts(part)
                            for part in cut_for_pages(window, count, self._reader.page_size)])
        return 1

    async def _read_once(self, window: Window, first_page_only: bool) -> tuple[bool, int | None]:
        """Whether this read was complete, and the largest @odata.count it saw."""
        ids: set[AlertKey] = set()
        counts: set[int] = set()
        repeated = False
        without_id = pages_read = 0
        async with aclosing(self._reader.pages(window.start, window.end)) as pages:
            async for page in pages:
                pages_read += 1
                if page.count is not None:
                    counts.add(page.count)
                for alert in page.alerts:
                    key = alert_key(alert)
                    if key is None:
                        without_id += 1
                        continue
                    repeated = repeated or key in ids
                    ids.add(key)
                self._on_page(window, page.alerts)
                if first_page_only:
                    break
        count = max(counts, default=None)
        complete = (len(counts) == 1 and not repeated and len(ids) + without_id == count
                    and not (without_id and pages_read > 1))
        if complete:
            self.without_id += without_id
        return complete, count


def alert_id_of(alert: object) -> str | None:
    """The alert's id as text; None for an item that has none (or is not an object)."""
    if type(alert) is not dict or not alert.get("id"):
        return None
    return str(alert["id"])


AlertKey = tuple[str, str]


def alert_key(alert: object) -> AlertKey | None:
    """The alert's identity within a tenant, (id, serviceSource), both as text ("" for no serviceSource); None for
    an item without an id."""
    alert_id = alert_id_of(alert)
    if alert_id is None:
        return None
    return alert_id, service_source_of(alert)


def service_source_of(alert: dict) -> str:
    """serviceSource as the lake's column holds it (`json_text.as_text`), "" when absent."""
    return as_text(alert.get("serviceSource")) or ""
