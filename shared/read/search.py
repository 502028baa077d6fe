"""Indicator search: one value (or several) across every table of the lake that has the matching p_any column.

The analyst's terms pass through the normalizer's own canonicalisers (normalizers.indicators), so a search
matches however the source spelled the value. Each table is read only for the days of the time range (its
partition folders outside it are never opened), rows are deduplicated on p_row_id as the views do, and every
table's hits come with the SQL that returns the same rows in `graphlake query`, to pivot from.

Tables written by other producers take part when they follow the layout: `<table>/year=/month=/day=/*.parquet`
with p_event_time and p_any_* columns. Columns a table lacks are left out of its query, not an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from normalizers import indicators
from shared.read import views
from shared.core.errors import ConfigError
from shared.read.query import LakeConnection

_UTC = dt.timezone.utc


def _hash_forms(value: str) -> dict[str, str] | None:
    hashed = indicators.canonical_hash(value)
    return None if hashed is None else {indicators.HASHES[hashed[0]]: hashed[1]}


def _single(column: str, canonical: Callable[[str], str | None]) -> Callable[[str], dict[str, str] | None]:
    def forms(value: str) -> dict[str, str] | None:
        found = canonical(value)
        return None if found is None else {column: found}
    return forms


# Option -> (what a valid value is, for the error; its canonical forms per p_any column, None if invalid).
KINDS: dict[str, tuple[str, Callable[[str], dict[str, str] | None]]] = {
    "ip": ("an IPv4 or IPv6 address", _single(indicators.IP_ADDRESSES, indicators.canonical_ip)),
    "domain": ("a domain or host name", _single(indicators.DOMAIN_NAMES, indicators.canonical_domain)),
    "user": ("a user name", _single(indicators.USERNAMES, indicators.canonical_username)),
    "email": ("an email address", _single(indicators.EMAILS, indicators.canonical_email)),
    "hash": ("an MD5, SHA-1 or SHA-256 in hex", _hash_forms),
    "url": ("a URL", _single(indicators.URLS, indicators.canonical_url)),
    "actor": ("an Entra object id, SID or Defender device id", _single(indicators.ACTOR_IDS,
                                                                        indicators.canonical_actor_id)),
    "any": ("an indicator of some kind", lambda value: indicators.canonical_forms(value) or None),
}

# What a hit shows, from whichever of these columns a table has (other producers name them their own way).
_SHOWN = {
    "id": ("id", "eventID", "uuid", "event_id"),
    "title": ("title", "summary", "eventName", "displayMessage", "message"),
    "provider": ("serviceSource", "provider", "eventSource"),
    "severity": ("severity",),
    "status": ("status",),
    "lastUpdateDateTime": ("lastUpdateDateTime",),
}
HIT_COLUMNS = ("table", "p_event_time", "p_log_type", *_SHOWN, "matched")
# A table with these columns holds versions of alerts: by default a search shows one row per alert, the latest of
# its versions that match.
_VERSION_KEY = ("id", "lastUpdateDateTime")
_TYPED = {"lastUpdateDateTime"}  # shown as the table holds it; the others as text, whatever each table's type


@dataclass
class TableHits:
    table: str
    count: int
    rows: list[tuple]  # HIT_COLUMNS, newest first, at most `limit`
    pivot_sql: str  # for `graphlake query`: the same rows, every column


@dataclass
class SearchResult:
    terms: dict[str, set[str]]  # p_any column -> canonical values
    since: dt.datetime
    until: dt.datetime
    tables: list[TableHits] = field(default_factory=list)
    searched: list[str] = field(default_factory=list)  # tables read (hit or not)
    in_range: list[str] = field(default_factory=list)  # tables with a day partition in the range
    lake_days: tuple[dt.date, dt.date] | None = None  # the first and last day partition of any table


def terms_for(options: dict[str, list[str]]) -> dict[str, set[str]]:
    """Canonical values per p_any column for `{"ip": ["10.0.0.1"], ...}`; ConfigError names a bad value."""
    terms: dict[str, set[str]] = {}
    for kind, values in options.items():
        what, forms_of = KINDS[kind]
        for value in values:
            forms = forms_of(value)
            if not forms:
                raise ConfigError(f"--{kind} {value!r} is not {what}")
            for column, canonical in forms.items():
                terms.setdefault(column, set()).add(canonical)
    if not terms:
        raise ConfigError("nothing to search for: give --ip, --domain, --user, --email, --hash, --url, --actor or --any")
    return terms


def search(connection: LakeConnection, terms: dict[str, set[str]], since: dt.datetime, until: dt.datetime,
           limit: int = 50, *, all_versions: bool = False) -> SearchResult:
    """Hits per table, newest first. A table of alert versions gives one row per alert (the latest version that
    matches) unless `all_versions`."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be aware datetimes")
    # Partitions are UTC days: an offset like -05:00 must not shift which days are read.
    since, until = since.astimezone(_UTC), until.astimezone(_UTC)
    if since >= until:
        raise ConfigError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    if not connection.files:
        raise ConfigError(f"the lake at {connection.lake.url} holds no tables (<table>/year=/month=/day=/*.parquet)")
    days = [f.day for files in connection.files.values() for f in files]
    result = SearchResult(terms, since, until, lake_days=(min(days), max(days)))
    for table, files in sorted(connection.files.items()):
        in_range = [f for f in files if since.date() <= f.day <= until.date()]
        if not in_range:
            continue
        result.in_range.append(table)
        source = views.read_parquet(connection.readable(in_range))
        columns = connection.columns_of(source)
        present = {column: values for column, values in terms.items() if column in columns}
        if "p_event_time" not in columns or not present:
            continue
        result.searched.append(table)
        latest = not all_versions and set(_VERSION_KEY) <= columns
        count, rows = _table_hits(connection, table, source, columns, present, since, until, limit, latest)
        if count:
            result.tables.append(TableHits(table, count, rows, pivot_sql(table, present, since, until, columns,
                                                                         latest)))
    return result


def _match_condition(terms: dict[str, set[str]]) -> str:
    return " OR ".join(f"list_has_any({column}, {_list(values)})" for column, values in sorted(terms.items()))


def _time_condition(since: dt.datetime, until: dt.datetime) -> str:
    return f"p_event_time >= {_timestamp(since)} AND p_event_time < {_timestamp(until)}"


def _latest_version(columns: set[str]) -> str:
    """The QUALIFY that keeps each alert's latest version (of the rows it filters), as the latest view orders."""
    alert = ", ".join(c for c in ("tenantId", "id") if c in columns)
    return f"QUALIFY row_number() OVER (PARTITION BY {alert} ORDER BY {views.latest_version_first(columns)}) = 1"


def pivot_sql(table: str, terms: dict[str, set[str]], since: dt.datetime, until: dt.datetime,
              columns: set[str] = frozenset(), latest: bool = False) -> str:
    qualify = f"\n{_latest_version(columns)}" if latest else ""
    return (f"SELECT * FROM {views.quote_identifier(table)}\nWHERE {_time_condition(since, until)}\n"
            f"  AND ({_match_condition(terms)}){qualify}\nORDER BY {_newest_first(columns)}")


def _table_hits(connection: LakeConnection, table: str, source: str, columns: set[str], terms: dict[str, set[str]],
                since: dt.datetime, until: dt.datetime, limit: int, latest: bool) -> tuple[int, list[tuple]]:
    shown = [f"{_first_present(columns, candidates, as_text=name not in _TYPED)} AS {name}"
             for name, candidates in _SHOWN.items()]
    log_type = "p_log_type" if "p_log_type" in columns else "NULL"
    matched = " || ".join(
        f"coalesce(list_transform(list_intersect({column}, {_list(values)}), lambda v: '{column.removeprefix('p_any_')}:'"
        " || v), [])" for column, values in sorted(terms.items()))
    # The filter runs before the deduplication here (the views do it the other way round): copies of a row
    # are identical, so both orders give the same rows, and this one only deduplicates the hits.
    hits = views.deduplicated(f"{source}\nWHERE {_time_condition(since, until)} AND ({_match_condition(terms)})",
                              columns)
    if latest:
        hits = f"SELECT * FROM ({hits})\n{_latest_version(columns)}"
    sql = (f"SELECT {views.quote_literal(table)}, p_event_time, {log_type}, {', '.join(shown)},\n"
           f"       array_to_string(list_sort(list_distinct({matched})), ', '), count(*) OVER ()\n"
           f"FROM ({hits})\nORDER BY {_newest_first(columns)}\nLIMIT {int(limit)}")
    rows = connection.execute(sql).fetchall()
    return (rows[0][-1] if rows else 0), [row[:-1] for row in rows]


def _newest_first(columns: set[str]) -> str:
    # The versions of an alert share p_event_time (its createdDateTime): the latest update comes first.
    return "p_event_time DESC, lastUpdateDateTime DESC" if "lastUpdateDateTime" in columns else "p_event_time DESC"


def _first_present(columns: set[str], candidates: tuple[str, ...], *, as_text: bool = True) -> str:
    for candidate in candidates:
        if candidate in columns:
            name = views.quote_identifier(candidate)
            return f"CAST({name} AS VARCHAR)" if as_text else name
    return "NULL"


def _list(values: set[str]) -> str:
    return "[" + ", ".join(views.quote_literal(v) for v in sorted(values)) + "]"


def _timestamp(moment: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{moment.astimezone(_UTC).isoformat(sep=' ')}'"
