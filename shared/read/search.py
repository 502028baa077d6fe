"""Indicator search: one value (or several) across every table of the lake that has the matching p_any column.

The analyst's terms pass through the normalizer's own canonicalisers (normalizers.indicators), so a search
matches however the source spelled the value. Each table is read only for the days of the time range (its
partition folders outside it are never opened), rows are deduplicated on p_row_id as the views do, and every
table's hits come with the SQL that returns the same rows in `graphlake query`, to pivot from.

Tables written by other producers take part when they follow the layout: `<table>/year=/month=/day=/*.parquet`
with p_event_time and p_any_* columns. Columns a table lacks are left out of its query, not an error.

What analysts pivot on beyond the p_any kinds (file names, command lines, message ids, apps, Azure resources) is in
no p_any list: those kinds (`PIVOTS`) are matched in the columns of the evidence view, so only the alerts table
takes part for them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from normalizers import indicators
from shared.read import views
from shared.core.errors import ConfigError

if TYPE_CHECKING:  # the Spark reader (shared.read.spark) builds the same SQL without DuckDB installed
    from shared.read import indicator_index
    from shared.read.query import LakeConnection

_UTC = dt.timezone.utc
NO_INDEX_ASKED = "--no-index"


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


@dataclass(frozen=True)
class Pivot:
    """A kind matched in the evidence view's columns (normalizers/evidence_columns.py) rather than a p_any list."""
    what: str  # a valid value, for the error
    noun: str  # what the kind is called in a note
    columns: tuple[str, ...]  # of the evidence view; a value in any of them matches
    fold: Callable[[str], str | None]  # the analyst's value as compared; None if it cannot be one of this kind
    folded: str  # SQL: a column's value as compared, `{}` standing for the column
    contains: bool = False  # a part of the value matches, not only the whole
    in_any: bool = True  # tried by --any, which matches whole values only
    # The column of Azure resource ids, which a subscription id matches by the ids' `/subscriptions/<id>/` prefix:
    # evidence of an Azure resource names its subscription nowhere else.
    under_subscription: str | None = None


def _text(value: str) -> str | None:
    return value.strip().lower() or None


def _part(value: str) -> str | None:
    # Spaces around a part are kept: ' -enc ' must not match '-encoding'.
    return value.lower() if value.strip() else None


def _file_name(value: str) -> str | None:
    # The columns hold the name alone: a path would silently match nothing.
    return None if "/" in value or "\\" in value else _text(value)


def _message_id(value: str) -> str | None:
    # Headers show an internet message id in angle brackets and tools copy it without: both spellings match.
    # Case is dropped too: a network message id is a GUID, and no two messages' ids differ only in case.
    text = value.strip().strip("<>").strip().lower()
    return text if text and not any(c.isspace() for c in text) else None


def _guid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return None


def _resource_id(value: str) -> str | None:
    # Azure resource ids are case-insensitive and are written with or without a trailing slash.
    text = value.strip().lower().rstrip("/")
    return text or None


_CASELESS = "lower({})"
PIVOTS: dict[str, Pivot] = {
    "file_name": Pivot("a file name (without its folder)", "file names", ("file_name", "parent_file_name"),
                       _file_name, _CASELESS),
    "command_line": Pivot("part of a command line", "command lines", ("process_command_line",), _part, _CASELESS,
                          contains=True, in_any=False),
    "message_id": Pivot("a network or internet message id", "message ids",
                        ("network_message_id", "internet_message_id"), _message_id, "lower(trim({}, '<>'))"),
    "cloud_app": Pivot("a cloud app's name or app id", "cloud apps", ("cloud_app", "app_id"), _text, _CASELESS),
    "app_id": Pivot("an application (client) id, a GUID", "app ids", ("app_id",), _guid, _CASELESS),
    "resource_id": Pivot("an Azure resource, VM or subscription id", "Azure resource ids",
                         ("azure_resource_id", "vm_id", "subscription_id"), _resource_id, "rtrim(lower({}), '/')",
                         under_subscription="azure_resource_id"),
}


@dataclass
class Terms:
    """What a search looks for, as the lake holds it."""
    indicators: dict[str, set[str]] = field(default_factory=dict)  # p_any column -> canonical values
    evidence: dict[str, set[str]] = field(default_factory=dict)  # PIVOTS kind -> folded values


# What a hit shows, from whichever of these columns a table has (other producers name them their own way).
# Azure Monitor's records (the log tables) show their correlationId, operationName, category, level and resultType.
_SHOWN = {
    "id": ("id", "eventID", "uuid", "event_id", "correlationId"),
    "title": ("title", "summary", "eventName", "displayMessage", "message", "operationName"),
    "provider": ("serviceSource", "provider", "eventSource", "category"),
    "severity": ("severity", "level"),
    "status": ("status", "resultType"),
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
    terms: Terms
    since: dt.datetime
    until: dt.datetime
    tables: list[TableHits] = field(default_factory=list)
    searched: list[str] = field(default_factory=list)  # tables read (hit or not)
    in_range: list[str] = field(default_factory=list)  # tables with a day partition in the range
    lake_days: tuple[dt.date, dt.date] | None = None  # the first and last day partition of any table
    days_read: tuple[dt.date, dt.date] | None = None  # the first and last day partition of the tables searched
    without_evidence: list[str] = field(default_factory=list)  # in the range, but not searched for terms.evidence
    index: dict[str, indicator_index.IndexUse] = field(default_factory=dict)  # per table in the range


def _option(kind: str) -> str:
    return "--" + kind.replace("_", "-")


def terms_for(options: dict[str, list[str]]) -> Terms:
    """The terms of `{"ip": ["10.0.0.1"], "file_name": [...], ...}`; ConfigError names a bad value."""
    terms = Terms()
    for kind, values in options.items():
        pivots = [kind] if kind in PIVOTS else [k for k, p in PIVOTS.items() if p.in_any] if kind == "any" else []
        what = KINDS[kind][0] if kind in KINDS else PIVOTS[kind].what
        for value in values:
            forms = (KINDS[kind][1](value) or {}) if kind in KINDS else {}
            for column, canonical in forms.items():
                terms.indicators.setdefault(column, set()).add(canonical)
            folded = {k: f for k in pivots if (f := PIVOTS[k].fold(value)) is not None}
            for pivot, value_folded in folded.items():
                terms.evidence.setdefault(pivot, set()).add(value_folded)
            if not forms and not folded:
                raise ConfigError(f"{_option(kind)} {value!r} is not {what}")
    if not terms.indicators and not terms.evidence:
        options = [_option(k) for k in (*KINDS, *PIVOTS) if k != "any"]
        raise ConfigError(f"nothing to search for: give {', '.join(options)} or --any")
    return terms


def search(connection: LakeConnection, terms: Terms, since: dt.datetime, until: dt.datetime,
           limit: int = 50, *, all_versions: bool = False, use_index: bool = True) -> SearchResult:
    """Hits per table, newest first. A table of alert versions gives one row per alert (the latest version that
    matches) unless `all_versions`. With `use_index`, the days of the range that have a trustworthy indicator index
    are read only in the files it names for the terms (see shared/read/indicator_index.py); the same SQL runs on
    them."""
    from shared.read import indicator_index  # imported here, as LakeConnection is

    since, until = utc_range(since, until)
    if not connection.files:
        raise ConfigError(f"the lake at {connection.lake.url} holds no tables (<table>/year=/month=/day=/*.parquet)")
    days = [f.day for files in connection.files.values() for f in files]
    result = SearchResult(terms, since, until, lake_days=(min(days), max(days)))
    days_read: list[dt.date] = []
    for table, files in sorted(connection.files.items()):
        in_range = [f for f in files if since.date() <= f.day <= until.date()]
        if not in_range:
            continue
        result.in_range.append(table)
        if not use_index:
            narrowed = indicator_index.scanned(in_range, NO_INDEX_ASKED)
        elif terms.evidence and table == views.ALERTS_TABLE:
            narrowed = indicator_index.scanned(in_range, indicator_index.NOT_INDEXED_KIND)
        else:
            narrowed = indicator_index.narrow(connection.lake.open_file, in_range, connection.indexes, terms.indicators)
        result.index[table] = narrowed.use
        source = _source(connection, narrowed)
        columns = connection.columns_of(source) if source else set()
        # Whether the table takes part: from the columns of every file of the range, those not read included.
        if table_terms(result, table, columns | narrowed.columns) is None:
            continue
        days_read += [f.day for f in in_range]
        present = present_terms(terms, table, columns)
        if not source or "p_event_time" not in columns or not (present.indicators or present.evidence):
            continue  # no file the index left to read can hold a hit
        latest = not all_versions and holds_versions(columns)
        sql = hits_sql(table, source, columns, present, since, until, limit, latest)
        add_hits(result, table, columns, present, latest, connection.execute(sql).fetchall())
    result.days_read = (min(days_read), max(days_read)) if days_read else None
    return result


def utc_range(since: dt.datetime, until: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The search's range in UTC; ConfigError if it is empty."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be aware datetimes")
    # Partitions are UTC days: an offset like -05:00 must not shift which days are read.
    since, until = since.astimezone(_UTC), until.astimezone(_UTC)
    if since >= until:
        raise ConfigError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    return since, until


def table_terms(result: SearchResult, table: str, columns: set[str]) -> Terms | None:
    """The terms of `result` that `table` can hold, given its columns; None (noted in `result`) when it holds none
    of them and is not searched."""
    terms = result.terms
    present = present_terms(terms, table, columns)
    if terms.evidence and not present.evidence:
        result.without_evidence.append(table)
    if "p_event_time" not in columns or not (present.indicators or present.evidence):
        return None
    result.searched.append(table)
    return present


def present_terms(terms: Terms, table: str, columns: set[str]) -> Terms:
    """The terms a table with these columns can hold."""
    return Terms({column: values for column, values in terms.indicators.items() if column in columns},
                 terms.evidence if _holds_evidence(table, columns) else {})


def holds_versions(columns: set[str]) -> bool:
    """Whether a table with these columns holds versions of alerts, shown one row per alert by default."""
    return set(_VERSION_KEY) <= columns


def add_hits(result: SearchResult, table: str, columns: set[str], terms: Terms, latest: bool,
             rows: list[tuple]) -> None:
    """A table's rows of `hits_sql` (each ending with the count of all hits) into `result`."""
    if rows:
        result.tables.append(TableHits(table, rows[0][-1], [tuple(row[:-1]) for row in rows],
                                       pivot_sql(table, terms, result.since, result.until, columns, latest)))


def _source(connection: LakeConnection, narrowed: indicator_index.Narrowed) -> str:
    """The FROM-able of the files to read ("" for none), each read whole or in the row groups the index names."""
    from shared.read import indicator_index

    if not narrowed.files:
        return ""
    paths = connection.readable(narrowed.files)
    rows = {path: narrowed.rows[f.path] for f, path in zip(narrowed.files, paths) if f.path in narrowed.rows}
    return indicator_index.source(paths, rows)


def _holds_evidence(table: str, columns: set[str]) -> bool:
    # The evidence view reads Graph's evidence JSON, which only the alerts table holds.
    return table == views.ALERTS_TABLE and {"evidence", "p_row_id"} <= columns


def _match_condition(terms: Terms, evidence_rows: str) -> str:
    """Whether a row matches: a p_any list holds a value, or its p_row_id is among `evidence_rows` (SQL) when
    evidence is searched."""
    matches = [f"list_has_any({column}, {_list(values)})" for column, values in sorted(terms.indicators.items())]
    if terms.evidence:
        matches.append(evidence_rows)
    return " OR ".join(matches)


def _evidence_matches(evidence: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(evidence view column, when it holds a value searched for) for every column searched: one text for the
    search and for its pivot SQL, so both find the same rows."""
    matches = []
    for kind, values in sorted(evidence.items()):
        pivot = PIVOTS[kind]
        for column in pivot.columns:
            folded = pivot.folded.format(views.quote_identifier(column))
            if pivot.contains:
                tests = [f"contains({folded}, {views.quote_literal(v)})" for v in sorted(values)]
            else:
                tests = [f"{folded} IN ({', '.join(map(views.quote_literal, sorted(values)))})"]
            if column == pivot.under_subscription:
                tests += [f"starts_with({folded}, {views.quote_literal(f'/subscriptions/{v}/')})"
                          for v in sorted(values) if _guid(v) == v]
            matches.append((column, " OR ".join(tests)))
    return matches


def _evidence_condition(evidence: dict[str, set[str]], separator: str = " OR ") -> str:
    return separator.join(f"({test})" for _, test in _evidence_matches(evidence))


def _time_condition(since: dt.datetime, until: dt.datetime) -> str:
    return f"p_event_time >= {_timestamp(since)} AND p_event_time < {_timestamp(until)}"


def _latest_version(columns: set[str]) -> str:
    """The QUALIFY that keeps each alert's latest version (of the rows it filters), as the latest view keeps it."""
    # rule_matches: the latest version each rule matched (two rules' matches of one alert are two hits).
    return views.latest_version_only(columns, per=("p_rule_id",) if "p_rule_id" in columns else ())


def pivot_sql(table: str, terms: Terms, since: dt.datetime, until: dt.datetime,
              columns: set[str] = frozenset(), latest: bool = False) -> str:
    qualify = f"\n{_latest_version(columns)}" if latest else ""
    time = _time_condition(since, until)
    in_evidence = (f"p_row_id IN (SELECT p_row_id FROM {views.EVIDENCE_VIEW}\n    WHERE {time}\n"
                   f"      AND ({_evidence_condition(terms.evidence, chr(10) + '        OR ')}))")
    return (f"SELECT * FROM {views.quote_identifier(table)}\nWHERE {time}\n"
            f"  AND ({_match_condition(terms, in_evidence)}){qualify}\nORDER BY {_newest_first(columns)}")


def hits_sql(table: str, source: str, columns: set[str], terms: Terms, since: dt.datetime, until: dt.datetime,
             limit: int, latest: bool) -> str:
    """The SELECT of a table's hits (HIT_COLUMNS, then the count of all hits), newest first, at most `limit`, over
    `source`, a FROM-able of the table's rows (its files in the range)."""
    shown = [f"{_first_present(columns, candidates, as_text=name not in _TYPED)} AS {name}"
             for name, candidates in _SHOWN.items()]
    log_type = "p_log_type" if "p_log_type" in columns else "NULL"
    matched = [
        f"coalesce(list_transform(list_intersect({column}, {_list(values)}), lambda v: '{column.removeprefix('p_any_')}:'"
        " || v), [])" for column, values in sorted(terms.indicators.items())]
    scan, evidence_hits = source, ""
    if terms.evidence:
        # Evidence is parsed for the range's rows only; each matching version gets the values it matched on.
        labels = ", ".join(
            f"CASE WHEN {test} THEN {views.quote_literal(column + ':')} || {views.quote_identifier(column)} END"
            for column, test in _evidence_matches(terms.evidence))
        items = views.evidence_items(f"(SELECT * FROM {source} WHERE {_time_condition(since, until)})")
        evidence_hits = (f"WITH evidence_hits AS (\n"
                         f"  SELECT p_row_id, list_distinct(flatten(list(labels))) AS evidence_matched\n"
                         f"  FROM (SELECT p_row_id, list_filter([{labels}], lambda v: v IS NOT NULL) AS labels\n"
                         f"        FROM ({items})\n        WHERE {_evidence_condition(terms.evidence)})\n"
                         f"  GROUP BY p_row_id)\n")
        scan = f"{source} LEFT JOIN evidence_hits USING (p_row_id)"
        matched.append("coalesce(evidence_matched, [])")
    # The filter runs before the deduplication here (the views do it the other way round): copies of a row
    # are identical, so both orders give the same rows, and this one only deduplicates the hits.
    match = _match_condition(terms, "evidence_matched IS NOT NULL")
    hits = views.deduplicated(f"{scan}\nWHERE {_time_condition(since, until)} AND ({match})", columns)
    if latest:
        hits = f"SELECT * FROM ({hits})\n{_latest_version(columns)}"
    return (f"{evidence_hits}SELECT {views.quote_literal(table)}, p_event_time, {log_type}, {', '.join(shown)},\n"
            f"       array_to_string(list_sort(list_distinct({' || '.join(matched)})), ', '), count(*) OVER ()\n"
            f"FROM ({hits})\nORDER BY {_newest_first(columns)}\nLIMIT {int(limit)}")


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
