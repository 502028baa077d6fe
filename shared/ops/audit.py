"""Completeness against the source of truth: is the latest version of every alert Graph holds in the lake?

Graph keeps only each alert's latest version, so that is what can be checked: an older version that never landed
cannot be seen from Graph any more. alerts_v2 documents no `$select`, so the audit reads whole pages of 2,000 (the
fewest calls), keeps only id, lastUpdateDateTime, serviceSource and createdDateTime of each alert, and compares the
p_row_id each latest version must have with the lake. An alert is its (id, serviceSource): two products can report
one id, so the lake's rows are grouped by both columns, and a row written before serviceSource was part of p_row_id
is recognised by its old id (legacy_row_id) within that group. The lake is partitioned by creation day, not update
day, so only the partitions of the days the alerts were created on are read, and of them only three columns.

`--repair` re-reads the window and sends what is missing through the normal fan-out (Event Hubs, or the in-process
normalizer in the CLI); re-sent versions carry their p_row_id and deduplicate like any redelivery. Reading again
costs as many calls as the audit itself, and only when something is missing; keeping every body of the first read
instead would hold the whole window in memory.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import orjson

from normalizers.core import legacy_row_id, row_id
from normalizers.names import TABLE
from shared.core.errors import GraphlakeError, one_line
from shared.core.json_text import as_text
from shared.pull.confirmed import MAX_READS, AlertKey, ConfirmedReader, alert_key
from shared.pull.fanout import UNKNOWN_PROVIDER, EventSink, Fanout, hub_router
from shared.pull.graph import AlertsReader, Backoff, CallStats, GraphCallFailed, graph_client
from shared.core.lake_files import read_tables
from shared.core.layout import partition_path
from shared.core.settings import Settings, Source
from shared.core.storage import Store
from shared.core.timestamps import parse_graph_time
from shared.pull.watermark import WatermarkStore
from shared.pull.window import Window

log = logging.getLogger("graphlake.audit")

AUDIT_PAGE_SIZE = 2000  # Graph's largest page: the fewest calls per alert read
LAKE_COLUMNS = ["id", "serviceSource", "p_row_id"]


@dataclass(frozen=True, slots=True)
class GraphVersion:
    """What the audit keeps of one alert Graph showed: enough to find it in the lake and to report it."""

    alert_id: str
    last_update: str
    provider: str
    row_id: str
    created_day: date | None  # the lake partition it lands in; None when createdDateTime does not parse
    service_source: str = ""  # as the lake's serviceSource column holds it, "" for none
    # The p_row_id this version had before serviceSource was part of it: what lakes written before hold. None
    # when not known (a re-sent version the reconciliation remembers carries the one it was sent with).
    legacy_row_id: str | None = None

    @property
    def key(self) -> AlertKey:
        return self.alert_id, self.service_source

    def held_in(self, row_ids: Iterable[str]) -> bool:
        return self.row_id in row_ids or (self.legacy_row_id is not None and self.legacy_row_id in row_ids)


@dataclass
class ProviderAudit:
    alerts: int = 0    # alerts Graph holds in the window
    complete: int = 0  # whose latest version is in the lake
    missing: int = 0   # with no version at all in the lake
    behind: int = 0    # in the lake, but not at their latest version


@dataclass(frozen=True, slots=True)
class Finding:
    alert_id: str
    last_update: str
    provider: str
    kind: str  # "missing" (no version in the lake) or "behind" (an older version only)
    late: bool  # older than the pull's watermark minus overlap: no pull will read it again
    service_source: str = ""  # "" for none; `provider` names that "unknown"

    @property
    def key(self) -> AlertKey:
        return self.alert_id, self.service_source


@dataclass
class AuditReport:
    source_id: str
    window: str = ""
    watermark: str | None = None
    alerts: int = 0
    providers: dict[str, ProviderAudit] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    unreadable: int = 0  # items without an id: the normalizer quarantines them, the lake cannot hold them
    confirmed: bool = True  # every alert of the window was read (see shared/pull/confirmed.py)
    repaired: int = 0  # missing versions sent again through the fan-out, or found landed meanwhile
    resent: list[GraphVersion] = field(default_factory=list)  # of those, the versions sent again
    graph: CallStats = field(default_factory=CallStats)
    error: str | None = None

    @property
    def missing(self) -> int:
        return len(self.findings)

    @property
    def late_found(self) -> int:
        return sum(1 for f in self.findings if f.late)

    @property
    def complete(self) -> bool:
        """Nothing missing that was not sent again, and every alert read."""
        return self.error is None and self.confirmed and self.missing == self.repaired

    def to_doc(self) -> dict:
        doc = asdict(self)
        doc["providers"] = dict(sorted(doc["providers"].items()))
        return doc | {"missing": self.missing, "late_found": self.late_found, "resent": len(self.resent)}

    def to_json(self) -> str:
        return orjson.dumps(self.to_doc(), option=orjson.OPT_NON_STR_KEYS).decode()


def audit_settings(settings: Settings) -> Settings:
    """The audit's own call budget (the pull shares the tenant's 150 calls a minute) and Graph's largest page."""
    return settings.model_copy(update={
        "graph_max_requests_per_minute": settings.reconcile_max_requests_per_minute,
        "pull_page_size": AUDIT_PAGE_SIZE})


async def audit_all(settings: Settings, state: Store, lake: Store, *, since: datetime, now: datetime | None = None,
                    sink: EventSink | None = None, credential=None, backoff: Backoff = Backoff()) -> list[AuditReport]:
    """Audits every source over [since, its watermark); with a sink, sends what is missing. A source that fails
    is reported with its error; the others still run."""
    return [await audit_source(source, settings, state, lake, since=since, now=now, sink=sink, credential=credential,
                               backoff=backoff)
            for source in settings.sources()]


async def audit_source(source: Source, settings: Settings, state: Store, lake: Store, *, since: datetime,
                       now: datetime | None = None, sink: EventSink | None = None,
                       credential=None, backoff: Backoff = Backoff()) -> AuditReport:
    now = now or datetime.now(UTC)
    report = AuditReport(source_id=source.id)
    try:
        mark = WatermarkStore(state, source.id).load()
        report.watermark = mark.position.isoformat() if mark.position else None
        window = audit_window(mark.position, now, since, settings)
        if window is None:
            return report
        report.window = str(window)
        settings = audit_settings(settings)
        async with graph_client(source, settings, report.graph, credential=credential, backoff=backoff) as client:
            reader = AlertsReader(client, settings, report.graph, source, backoff)
            latest, report.unreadable, report.confirmed = await read_graph(reader, window, report.graph)
            in_lake = lake_versions(lake, latest.values())
            late_before = mark.position - timedelta(seconds=settings.pull_overlap_seconds) if mark.position else None
            compare(report, latest.values(), in_lake, late_before)
            if sink is not None and report.findings:
                wanted = {f.key: in_lake.get(f.key, set()) for f in report.findings}
                fanout = Fanout(sink, state, source, hub_router(settings))
                report.repaired = await repair(reader, fanout, window, wanted, report.resent)
                sink.flush()
    except (GraphlakeError, GraphCallFailed) as exc:
        report.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one source failing must not stop the audit of the others
        log.exception("audit of source %s failed", source.id)
        report.error = one_line(exc, with_type=True)
    return report


def audit_window(watermark: datetime | None, now: datetime, since: datetime, settings: Settings) -> Window | None:
    """[since, watermark): what the pull says it has read. Alerts updated after the watermark are the next pull's
    work, not missing. Never a source pulled: up to now minus PULL_DELAY_SECONDS, so everything counts."""
    end = now - timedelta(seconds=settings.pull_delay_seconds)
    if watermark is not None:
        end = min(end, watermark)
    start, end = since.replace(microsecond=0), end.replace(microsecond=0)
    return Window(start, end) if start < end else None


async def read_graph(reader: AlertsReader, window: Window,
                     stats: CallStats) -> tuple[dict[AlertKey, GraphVersion], int, bool]:
    """The latest version of each alert updated in the window, by (id, serviceSource); the number of items without
    an id; whether every part of the window was shown complete (the pull's rule, shared/pull/confirmed.py)."""
    latest: dict[AlertKey, GraphVersion] = {}

    def keep_latest(_part: Window, alerts: list) -> None:
        for alert in alerts:
            version = graph_version(alert)
            if version is None:
                continue
            known = latest.get(version.key)
            if known is None or _newer(version.last_update, known.last_update):
                latest[version.key] = version

    read = ConfirmedReader(reader, stats, keep_latest)
    unconfirmed = await read.unconfirmed_parts(window)
    return latest, read.without_id, not unconfirmed


def graph_version(alert: object) -> GraphVersion | None:
    key = alert_key(alert)
    if key is None:
        return None
    last_update = alert.get("lastUpdateDateTime") or alert.get("createdDateTime")
    created = parse_graph_time(alert.get("createdDateTime"))
    new, legacy = expected_row_ids(alert)
    # The normalizer's spelling of serviceSource: it is compared with the lake's column.
    source = as_text(alert.get("serviceSource")) or ""
    return GraphVersion(key[0], str(last_update or ""), str(alert.get("serviceSource") or UNKNOWN_PROVIDER),
                        new, created.date() if created else None, source, legacy)


def expected_row_ids(alert: dict) -> tuple[str, str]:
    """The p_row_id the normalizer gives this version, and the one it gave before serviceSource was part of it;
    each field spelled as the normalizer spells it (an odd type as its JSON text)."""
    tenant = as_text(alert.get("tenantId"))
    version = as_text(alert.get("lastUpdateDateTime") or alert.get("createdDateTime"))
    alert_id = alert["id"] if type(alert.get("id")) is str else str(alert.get("id"))
    return (row_id(tenant, alert_id, version, as_text(alert.get("serviceSource"))),
            legacy_row_id(tenant, alert_id, version))


def _newer(candidate: str, known: str) -> bool:
    a, b = parse_graph_time(candidate), parse_graph_time(known)
    return a is not None and (b is None or a > b)


def lake_versions(lake: Store, versions: Iterable[GraphVersion]) -> dict[AlertKey, set[str]]:
    """p_row_ids the lake holds for each of these alerts, by (id, serviceSource), read from the day partitions they
    were created on (all partitions when one has no readable createdDateTime), three columns of each file.

    Grouped by the serviceSource column rather than recognised by p_row_id alone: a row written before
    serviceSource was part of p_row_id carries the old id, which one id's twins share, so only within the group of
    its serviceSource does it identify one alert's version."""
    versions = list(versions)
    wanted = {v.key for v in versions}
    days = {v.created_day for v in versions}
    prefixes = [f"{TABLE}/"] if None in days else [f"{partition_path(TABLE, day)}/" for day in sorted(days)]
    found: dict[AlertKey, set[str]] = defaultdict(set)
    for prefix in prefixes:
        for table in read_tables(lake, prefix, columns=LAKE_COLUMNS):
            for alert_id, source, p_row_id in zip(table.column("id").to_pylist(),
                                                  table.column("serviceSource").to_pylist(),
                                                  table.column("p_row_id").to_pylist()):
                key = (alert_id, source or "")
                if key in wanted:
                    found[key].add(p_row_id)
    return found


def compare(report: AuditReport, latest: Iterable[GraphVersion], in_lake: dict[AlertKey, set[str]],
            late_before: datetime | None) -> None:
    for version in sorted(latest, key=lambda v: (v.provider, v.alert_id, v.service_source)):
        counts = report.providers.setdefault(version.provider, ProviderAudit())
        counts.alerts += 1
        report.alerts += 1
        held = in_lake.get(version.key)
        if held and version.held_in(held):
            counts.complete += 1
            continue
        kind = "behind" if held else "missing"
        setattr(counts, kind, getattr(counts, kind) + 1)
        stamp = parse_graph_time(version.last_update)
        late = late_before is not None and stamp is not None and stamp < late_before
        report.findings.append(Finding(version.alert_id, version.last_update, version.provider, kind, late,
                                       version.service_source))


async def repair(reader: AlertsReader, fanout: Fanout, window: Window, wanted: dict[AlertKey, set[str]],
                 sent: list[GraphVersion] | None = None) -> int:
    """Reads the window again and sends the current version of each wanted alert, unless the lake already has it
    (a pull landed it meanwhile). Returns how many wanted alerts were sent or found landed, and adds the versions
    sent to `sent`; an alert updated since the audit has left the window, and its new version is the pull's."""
    done: set[AlertKey] = set()
    pulled_at = datetime.now(UTC).isoformat()
    for _ in range(MAX_READS):
        async for page in reader.pages(window.start, window.end):
            batch = []
            for alert in page.alerts:
                version = graph_version(alert)
                if version is None or version.key not in wanted or version.key in done:
                    continue
                done.add(version.key)
                if not version.held_in(wanted[version.key]):
                    batch.append(alert)
            fanout.send_page(batch, pulled_at)
            if sent is not None:
                sent.extend(filter(None, map(graph_version, batch)))
        if len(done) >= len(wanted):
            break
    return len(done)

