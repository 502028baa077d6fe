"""Failure modes connectors meet on alerts_v2: throttling, 5xx, full pages that lack a nextLink, a tenant that
changes between the page requests of one query, pages in an order that is not stable, malformed timestamps, alerts
without an id, a client whose clock runs ahead of Graph's for a run, a Graph whose clock is behind the host's, a
proxy that strips Graph's Date header."""

from __future__ import annotations

import math
import random
import threading
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Faults:
    # Graph allows 150 requests/min per app per tenant on /security (reference §6); None = unlimited.
    rate_limit_per_window: int | None = None
    rate_window_seconds: float = 60.0
    # Sent in Retry-After; None = the seconds until the app's window resets (at least 1). msgraph's RetryHandler
    # reads 0 as no Retry-After and waits its own backoff, which a test can make short (shared.pull.graph.Backoff).
    retry_after_seconds: int | None = None
    # Share of Graph calls answered with a random 500/502/503/504.
    error_rate: float = 0.0
    # Share of full pages sent without @odata.nextLink although more results exist (Microsoft Q&A 1611210).
    drop_next_link_rate: float = 0.0
    # Seconds each Graph call takes before it answers; Graph pages take a fraction of a second to seconds.
    latency_seconds: float = 0.0
    # Before each page after the first (a nextLink or $skip request), this many open alerts that earlier pages of
    # the same query held are updated: they leave a lastUpdateDateTime window, and later alerts move up a page.
    page_updates: int = 0
    # Alerts created in the same hour come in a different order on every request.
    unstable_order: bool = False
    # Share of alerts whose lastUpdateDateTime is printed without its zone ("2026-11-20T12:00:00.12"); the same
    # alerts on every call.
    malformed_timestamp_rate: float = 0.0
    # Share of alerts served without their id; the same alerts on every call.
    missing_id_rate: float = 0.0
    # Share of pull runs whose clock runs clock_ahead_seconds ahead of Graph's (a host whose clock jumped, fixed by
    # NTP before the next run). Graph's clock is the tenant's; a server cannot set its client's clock, so whoever
    # starts a run asks `pull_clock` (GraphSimulator.pull_clock) what time that run believes it is.
    clock_ahead_rate: float = 0.0
    clock_ahead_seconds: float = 7200.0
    # Graph's own clock (the tenant's: what it stamps lastUpdateDateTime with and sends in the Date header) runs this
    # many seconds behind the host's, for every call: a host whose clock is ahead and stays so. Stamp versions at
    # GraphSimulator.graph_now() to stamp them by this clock.
    tenant_clock_behind_seconds: float = 0.0
    # Answers come without a Date header, as behind a proxy that strips it (RFC 9110 lets a server without a clock
    # omit it; Graph sends it).
    strip_date_header: bool = False
    seed: int = 0


class FaultInjector:
    """Decides, per call, whether a fault fires. Thread-safe; replaced as a whole when faults change."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def throttle(self, app_id: str, now: float) -> int | None:
        """Seconds to put in Retry-After if this call is over the app's budget, else None (and it is counted).

        Fixed windows per app, starting at the app's first call after the previous window ended.
        """
        limit = self.faults.rate_limit_per_window
        if limit is None:
            return None
        window = self.faults.rate_window_seconds
        with self._lock:
            start, used = self._windows.get(app_id, (now, 0))
            if now - start >= window:
                start, used = now, 0
            if used >= limit:
                self._windows[app_id] = (start, used)
                if self.faults.retry_after_seconds is not None:
                    return self.faults.retry_after_seconds
                return max(1, math.ceil(start + window - now))
            self._windows[app_id] = (start, used + 1)
            return None

    def server_error(self) -> int | None:
        with self._lock:
            if self.faults.error_rate and self._rng.random() < self.faults.error_rate:
                return self._rng.choice((500, 502, 503, 504))
        return None

    def drop_next_link(self) -> bool:
        with self._lock:
            return bool(self.faults.drop_next_link_rate) and self._rng.random() < self.faults.drop_next_link_rate

    def shuffle_seed(self) -> int | None:
        if not self.faults.unstable_order:
            return None
        with self._lock:
            return self._rng.getrandbits(32)

    def served_timestamp(self, alert_id: str, text: str) -> str:
        """A lastUpdateDateTime as the API prints it for this alert: without its zone for the chosen share."""
        rate = self.faults.malformed_timestamp_rate
        if rate and zlib.crc32(f"{self.faults.seed}:{alert_id}".encode()) < rate * 2**32:
            return text.removesuffix("Z")
        return text

    def drops_id(self, alert_id: str) -> bool:
        """Whether this alert is served without its id."""
        rate = self.faults.missing_id_rate
        return bool(rate) and zlib.crc32(f"{self.faults.seed}:id:{alert_id}".encode()) < rate * 2**32

    def graph_clock(self, host_now: datetime) -> datetime:
        """Graph's time when the host's is `host_now`."""
        return host_now - timedelta(seconds=self.faults.tenant_clock_behind_seconds)

    def pull_clock(self, now: datetime) -> datetime:
        """The time a pull run started at Graph's `now` believes it is: ahead for the chosen share of runs."""
        with self._lock:
            if self.faults.clock_ahead_rate and self._rng.random() < self.faults.clock_ahead_rate:
                return now + timedelta(seconds=self.faults.clock_ahead_seconds)
        return now
