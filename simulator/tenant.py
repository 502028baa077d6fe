"""The simulated tenant: alerts, their versions over time, and queries over what the API shows at a moment.

Time is a logical clock (`Tenant.clock`, ticks) that only moves through `mutate`/`advance_to`, so tests control
it; `now` arguments take aware datetimes or ticks. A version becomes visible at the `now` of the call that made
it, while its lastUpdateDateTime may lie up to `max_lateness_seconds` earlier: that is how alerts that Graph shows
minutes after their timestamp are simulated. Pure Python, no I/O; one re-entrant lock makes it safe to mutate
while a server reads.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import orjson

from simulator import catalog
from simulator.alerts import AlertRecord, BodyCache, Version, first_version, graph_unit, next_version
from simulator.directory import Directory
from simulator.lateness import Lateness
from simulator.odata import ORDINALS, Predicate, compile_filter
from simulator.timefmt import TICKS_PER_SECOND, format_ticks, from_datetime, now_ticks, to_datetime

DEFAULT_TENANT_ID = "8c1a5e3f-2b7d-4f60-9e14-5a3c7d9b0e21"
_DAY = 86_400 * TICKS_PER_SECOND
_QUERY_CACHE_SIZE = 16


class VersionRef(NamedTuple):
    alert_id: str
    last_update: str       # lastUpdateDateTime as Graph prints it
    visible_at: datetime   # when the API started showing this version
    service_source: str    # the alert's serviceSource: with its id, what tells twins (add_twin) apart


@dataclass(frozen=True, slots=True)
class QueryResult:
    total: int            # matching alerts, all pages
    alerts: list[dict]


def _ticks(value: datetime | int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, datetime):
        return from_datetime(value)
    return value


class Tenant:
    def __init__(self, seed: int = 7, alerts: int = 3000, days: float = 7.0, now: datetime | int | None = None,
                 tenant_id: str = DEFAULT_TENANT_ID, body_cache_size: int = 5_000) -> None:
        self.seed = seed
        self.tenant_id = tenant_id
        self.lock = threading.RLock()
        self.clock = _ticks(now, now_ticks())
        self.history: list[Version] = []
        self._history_sources: list[str] = []
        self._rng = random.Random(seed)
        self._directory = Directory(self._rng, self.clock)
        self._bodies = BodyCache(self._directory, tenant_id, body_cache_size)
        self._records: list[AlertRecord] = []
        self._by_id: dict[str, AlertRecord] = {}
        self._rows: list[tuple] = []
        self._order: list[int] | None = None
        self._queries: OrderedDict[tuple, list[int]] = OrderedDict()
        self._revision = 0
        self._next_incident = 10_000 + self._rng.randrange(0, 90_000)
        self._coverage = catalog.coverage_order()
        self._pairs, self._cumulative = catalog.weighted_pairs()
        self._live_carry = (0.0, 0.0)
        self._generate_backlog(alerts, days)

    # --- reading -------------------------------------------------------------------------------------------

    @property
    def alert_count(self) -> int:
        return len(self._records)

    @property
    def directory(self) -> Directory:
        """The users, devices and apps the alerts are drawn from (simulator/monitor_logs.py draws its logs from them)."""
        return self._directory

    @property
    def now(self) -> datetime:
        """The tenant's clock as a datetime (microsecond precision)."""
        return to_datetime(self.clock)

    def versions(self) -> list[VersionRef]:
        """Every version ever current, in the order they were made."""
        with self.lock:
            return [VersionRef(v.alert_id, format_ticks(v.last_update), to_datetime(v.visible_at), source)
                    for v, source in zip(self.history, self._history_sources)]

    def current(self, alert_id: str, now: datetime | int | None = None) -> Version | None:
        with self.lock:
            rec = self._by_id.get(alert_id)
            return rec.visible(_ticks(now, self.clock)) if rec else None

    def service_source(self, alert_id: str) -> str:
        """The serviceSource of the alert with this id (of the first, when add_twin gave it a twin)."""
        with self.lock:
            return self._by_id[alert_id].provider.service_source

    def alert(self, alert_id: str, include_unknown_enum_members: bool = True,
              now: datetime | int | None = None) -> dict | None:
        raw = self.alert_json(alert_id, include_unknown_enum_members, now)
        return orjson.loads(raw) if raw is not None else None

    def alert_json(self, alert_id: str, include_unknown_enum_members: bool = True,
                   now: datetime | int | None = None) -> bytes | None:
        with self.lock:
            rec = self._by_id.get(alert_id)
            version = rec.visible(_ticks(now, self.clock)) if rec else None
            if rec is None or version is None:
                return None
            return self._bodies.render(rec, version, include_unknown_enum_members)

    def query(self, filter: str | None = None, top: int = 100, skip: int = 0,
              include_unknown_enum_members: bool = False, now: datetime | int | None = None) -> QueryResult:
        total, raw = self.query_json(filter, top, skip, include_unknown_enum_members, now)
        return QueryResult(total, [orjson.loads(item) for item in raw])

    def query_json(self, filter: str | None = None, top: int = 100, skip: int = 0,
                   include_unknown_enum_members: bool = False, now: datetime | int | None = None,
                   shuffle_seed: int | None = None) -> tuple[int, list[bytes]]:
        """Matching alerts newest-created first; raises odata.FilterError for a filter Graph would reject.

        With `shuffle_seed`, alerts created in the same hour come in an order that depends on the seed: an
        order that is not stable from one request to the next, which Graph never promises (reference §5).
        """
        with self.lock:
            at = _ticks(now, self.clock)
            matches = self._select(filter, at)
            if shuffle_seed is not None:
                matches = self._shuffled_within_hours(matches, random.Random(shuffle_seed))
            page = matches[skip:skip + top]
            out = []
            for index in page:
                rec = self._records[index]
                version = rec.visible(at) if at < self.clock else rec.current
                out.append(self._bodies.render(rec, version, include_unknown_enum_members))
            return len(matches), out

    def _select(self, filter: str | None, at: int) -> list[int]:
        key = (filter, at, self._revision)
        hit = self._queries.get(key)
        if hit is not None:
            self._queries.move_to_end(key)
            return hit
        predicate: Predicate | None = compile_filter(filter)
        if at >= self.clock:
            rows = self._rows
            candidates = self._sorted()
        else:
            rows = {}
            for rec in self._records:
                version = rec.visible(at)
                if version is not None:
                    rows[rec.index] = self._row(rec, version)
            candidates = [i for i in self._sorted() if i in rows]
        result = candidates if predicate is None else [i for i in candidates if predicate(rows[i])]
        self._queries[key] = result
        if len(self._queries) > _QUERY_CACHE_SIZE:
            self._queries.popitem(last=False)
        return result

    def _shuffled_within_hours(self, matches: list[int], rng: random.Random) -> list[int]:
        out: list[int] = []
        group: list[int] = []
        current = None
        for index in matches:
            hour = self._records[index].created // (3600 * TICKS_PER_SECOND)
            if hour != current:
                rng.shuffle(group)
                out += group
                group, current = [], hour
            group.append(index)
        rng.shuffle(group)
        return out + group

    def _sorted(self) -> list[int]:
        if self._order is None:
            records = self._records
            self._order = sorted(range(len(records)), key=lambda i: (records[i].created, records[i].id),
                                 reverse=True)
        return self._order

    @staticmethod
    def _row(rec: AlertRecord, version: Version) -> tuple:
        return (rec.created, version.last_update, ORDINALS["serviceSource"][rec.provider.service_source],
                ORDINALS["status"][version.status], ORDINALS["severity"][rec.severity],
                ORDINALS["classification"][version.classification], ORDINALS["determination"][version.determination],
                version.assigned_to)

    # --- changing ------------------------------------------------------------------------------------------

    def mutate(self, now: datetime | int | None = None, new_alerts: int = 0, updates: int = 0,
               max_lateness_seconds: float = 0.0, lateness: Lateness | None = None) -> list[Version]:
        """Add alerts and update open ones, all visible from `now`; returns the new versions.

        Each new version's lastUpdateDateTime (and a new alert's createdDateTime) is `now` minus a lateness, and
        always later than the alert's previous lastUpdateDateTime: uniform in [0, max_lateness_seconds], or drawn
        from `lateness` when given (a long tail of versions shown hours late).
        """
        with self.lock:
            at = _ticks(now, now_ticks())
            if at < self.clock:
                raise ValueError("the tenant's clock only moves forward")
            self.clock = at
            spread = int(max_lateness_seconds * TICKS_PER_SECOND)

            def stamp(after: int | None) -> int | None:
                if lateness is None:
                    return self._late_time(at, spread, after)
                return self._stamp(at, lateness.draw(self._rng), after)

            # Updates go to alerts that existed before this call: a new alert's first version must be seen.
            made = self._update(at, stamp, updates)
            for _ in range(new_alerts):
                created = stamp(None)
                made.append(self._create(created, created, at))
            if made:
                self._revision += 1
            return made

    def update_served(self, served: list[tuple[str, str]], count: int,
                      now: datetime | int | None = None) -> list[Version]:
        """Updates, now, up to `count` open alerts among `served` ((id, lastUpdateDateTime) pairs a client was
        shown) that are still at the version shown: what analysts working on alerts do to a query being paged. An
        alert updated now leaves any lastUpdateDateTime filter that ends before now, and every alert after it in
        the result moves up one position. A version nobody was shown is never superseded this way."""
        with self.lock:
            at = max(_ticks(now, now_ticks()), self.clock)
            self.clock = at
            shown = dict(served)
            records = [self._by_id[i] for i in shown if i in self._by_id]
            candidates = [rec for rec in records if rec.current.status != "resolved"
                          and rec.current.last_update_text == shown[rec.id]]
            made: list[Version] = []
            for rec in self._rng.sample(candidates, min(count, len(candidates))):
                stamp = self._stamp(at, 0, rec.current.last_update)
                if stamp is not None:
                    version = next_version(rec.current, self._rng, stamp, at, self._directory.analysts)
                    self._push(rec, version)
                    made.append(version)
            if made:
                self._revision += 1
            return made

    def add_twin(self, alert_id: str, now: datetime | int | None = None) -> Version:
        """A new alert with the id, createdDateTime and current lastUpdateDateTime of an existing one under another
        serviceSource, visible from `now`: two products reporting one id, which alerts_v2 does not rule out. The
        API serves both; GET by id keeps answering the first."""
        with self.lock:
            at = _ticks(now, now_ticks())
            if at < self.clock:
                raise ValueError("the tenant's clock only moves forward")
            self.clock = at
            first = self._by_id[alert_id]
            provider, template = next((p, t) for p, t in self._coverage if p.service_source
                                      != first.provider.service_source)
            # Reported together: the same lastUpdateDateTime (and createdDateTime) as the first's current version,
            # so nothing but serviceSource tells the two apart.
            version = self._create(first.created, first.current.last_update, at, alert_id=alert_id,
                                   provider=(provider, template))
            self._revision += 1
            return version

    def advance_to(self, now: datetime | int | None = None, new_per_minute: float = 4.0,
                   updates_per_minute: float = 6.0, max_lateness_seconds: float = 240.0,
                   lateness: Lateness | None = None) -> list[Version]:
        """Let simulated time pass, at modest rates, up to `now`: what the demo's background thread calls."""
        with self.lock:
            at = _ticks(now, now_ticks())
            minutes = max(0, at - self.clock) / (60 * TICKS_PER_SECOND)
            carry_new, carry_upd = self._live_carry
            carry_new += new_per_minute * minutes
            carry_upd += updates_per_minute * minutes
            new, upd = int(carry_new), int(carry_upd)
            self._live_carry = (carry_new - new, carry_upd - upd)
            return self.mutate(max(at, self.clock), new, upd, max_lateness_seconds, lateness)

    def _late_time(self, at: int, lateness: int, after: int | None) -> int | None:
        """A Graph-printable time in [at - lateness, at], later than `after`; None when there is no room."""
        low = at - lateness if after is None else max(at - lateness, after + 1)
        if low > at:
            return None
        exact = self._rng.randint(low, at)
        unit = graph_unit(self._rng)
        down = exact - exact % unit
        if down >= low:
            return down
        return down + unit if down + unit <= at else exact

    def _stamp(self, at: int, lateness: int, after: int | None) -> int | None:
        """A Graph-printable time `lateness` before `at` (later than `after`); None when there is no room."""
        exact = at - lateness if after is None else max(at - lateness, after + 1)
        if exact > at:
            return None
        unit = graph_unit(self._rng)
        down = exact - exact % unit
        return down if after is None or down > after else exact

    def _update(self, at: int, stamp: Callable[[int | None], int | None], count: int) -> list[Version]:
        open_records = [rec for rec in self._records if rec.current.status != "resolved"]
        self._rng.shuffle(open_records)
        made: list[Version] = []
        for rec in open_records:
            if len(made) == count:
                break
            when = stamp(rec.current.last_update)
            if when is None:
                continue
            version = next_version(rec.current, self._rng, when, at, self._directory.analysts)
            self._push(rec, version)
            made.append(version)
        return made

    def _push(self, rec: AlertRecord, version: Version) -> None:
        rec.versions.append(version)
        self.history.append(version)
        self._history_sources.append(rec.provider.service_source)
        self._rows[rec.index] = self._row(rec, version)

    def _create(self, created: int, last_update: int, visible_at: int, alert_id: str | None = None,
                provider: tuple | None = None) -> Version:
        index = len(self._records)
        provider, template = provider or (self._coverage[index] if index < len(self._coverage)
                                          else self._rng.choices(self._pairs, cum_weights=self._cumulative)[0])
        if alert_id is not None:
            provider_alert_id = alert_id.removeprefix(provider.prefix)
        while alert_id is None:
            provider_alert_id = provider.provider_alert_id(self._rng, created)
            alert_id = provider.prefix + provider_alert_id
            if alert_id in self._by_id:
                alert_id = None
        # Alerts cluster into incidents: most open a new one, some join the latest.
        if self._rng.random() < 0.75:
            self._next_incident += 1
        rec = AlertRecord(index, alert_id, provider_alert_id, str(self._next_incident), provider, template,
                          self._rng.choice(template.severities), created, self._rng.getrandbits(64))
        self._records.append(rec)
        self._by_id.setdefault(alert_id, rec)
        self._rows.append(())
        self._order = None
        version = first_version(rec, self._rng, last_update, visible_at)
        self._push(rec, version)
        return version

    def _rounded(self, ticks: int, floor: int) -> int:
        """`ticks` cut to a Graph print precision, unless that would take it to `floor` or below."""
        unit = graph_unit(self._rng)
        down = ticks - ticks % unit
        return down if down > floor else ticks

    def _generate_backlog(self, count: int, days: float) -> None:
        """Alerts created over the last `days`, many already worked on a few times, none changed after now.

        Backlog versions became visible a few minutes after their timestamp (never after the clock); they are in
        `history` like later ones, so checks can tell by `visible_at` which ones a client could have seen.
        """
        start = self.clock - int(days * _DAY)
        for created in sorted(self._rng.randint(start, self.clock) for _ in range(count)):
            created = self._rounded(created, start - 1)
            stamp = self._rounded(min(self.clock, created + self._rng.randrange(0, 90 * TICKS_PER_SECOND)),
                                  created - 1)
            visible = self._visible_after(stamp, stamp)
            version = self._create(created, stamp, visible)
            rec = self._records[-1]
            while version.status != "resolved" and self._rng.random() < 0.6:
                stamp = self._rounded(stamp + self._rng.randrange(60, 36 * 3600) * TICKS_PER_SECOND, stamp)
                if stamp > self.clock:
                    break
                visible = self._visible_after(stamp, version.visible_at)
                version = next_version(version, self._rng, stamp, visible, self._directory.analysts)
                self._push(rec, version)

    def _visible_after(self, stamp: int, previous: int) -> int:
        return max(previous, min(self.clock, stamp + self._rng.randrange(0, 300) * TICKS_PER_SECOND))
