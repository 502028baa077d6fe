"""The indicator index: which files of a closed day partition hold an indicator value, read to narrow a search.

Compaction writes one index per closed partition (shared/ops/index_build.py), at
`_index/<table>/year=/month=/day=/indicators-<digest of the partition's file names>.parquet` (shared/core/layout.py):
one row per (kind, value, file, row_group), `kind` a p_any_* column, `value` one canonical value of it, `file` the
name of a data file of the partition holding it in that row group; sorted by (kind, value) in small row groups, so
a reader's filter on kind and value skips all but one or two row groups of each index by their min/max statistics.
Its parquet key-value metadata (METADATA_KEY) holds the manifest: the data files it was built from with their
sizes and the row counts of their row groups, and their columns.

An index only narrows which files a search reads, and which row groups of them (a file read in part is a scan of
its own, filtered on file_row_number, which DuckDB prunes row groups by); the search's own SQL then runs on them, so
a search with the index and one without give the same hits as long as the index is right. It is trusted for a day only when it
reads, its manifest is of this format and partition, and every file it names is in the listing with the size it
had (compaction names files by their rows, so a re-compacted day has other names). Files the listing holds and
the manifest does not (a late batch landed after the index) are read as well; any other disagreement, an index
that does not read, or none at all, and the day's files are all read, as without an index.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import orjson

from shared.core.layout import parse_index_file
from shared.read import views
from shared.read.lake_reader import LakeFile

FORMAT = 1
METADATA_KEY = "graphlake.indicator_index"
INDICATOR_PREFIX = "p_any_"
# Why a day's files were all read: the reasons a search prints.
NO_INDEX = "no index (open or not yet indexed)"
STALE = "index stale (files changed since it was built)"
UNREADABLE = "index unreadable"
NOT_INDEXED_KIND = "evidence kinds are not indexed"


@dataclass(frozen=True)
class Manifest:
    table: str
    day: dt.date
    files: dict[str, int]  # data file name in the partition -> size in bytes
    columns: tuple[str, ...]  # the data files' columns
    groups: dict[str, list[int]] = field(default_factory=dict)  # data file name -> rows of each row group

    def to_json(self) -> bytes:
        return orjson.dumps({"format": FORMAT, "table": self.table, "day": self.day.isoformat(),
                             "files": dict(sorted(self.files.items())), "columns": list(self.columns),
                             "groups": dict(sorted(self.groups.items()))})

    @staticmethod
    def from_json(data: bytes | str) -> Manifest:
        """ValueError when it is not a manifest of this format."""
        try:
            doc = orjson.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"index format {doc.get('format')!r}, not {FORMAT}")
            return Manifest(str(doc["table"]), dt.date.fromisoformat(doc["day"]),
                            {str(k): int(v) for k, v in doc["files"].items()}, tuple(map(str, doc["columns"])),
                            {str(k): [int(n) for n in v] for k, v in doc["groups"].items()})
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an index manifest: {exc}") from None


@dataclass
class IndexUse:
    """How the index served one table's days of a search: what the search prints."""
    days: int = 0  # day partitions in the range
    from_index: int = 0  # days whose files were chosen by the index
    scanned: Counter = field(default_factory=Counter)  # reason -> days whose files were all read
    files_in_range: int = 0
    files_read: int = 0
    files_in_part: int = 0  # of those read, files read only in the row groups holding a value


@dataclass
class Narrowed:
    files: list[LakeFile]  # to read
    columns: set[str]  # of every file of the range, from the manifests (those read are added by the search)
    use: IndexUse
    rows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # path -> row ranges to read, if not all


def file_name(path: str) -> str:
    return path.rsplit("/", 1)[1]


def narrow(con: duckdb.DuckDBPyConnection, files: list[LakeFile], indexes: dict[tuple[str, dt.date], list[LakeFile]],
           indicators: dict[str, set[str]]) -> Narrowed:
    """The files of one table's range that can hold a row matching `indicators` (p_any column -> values)."""
    by_day: dict[dt.date, list[LakeFile]] = {}
    for f in files:
        by_day.setdefault(f.day, []).append(f)
    use = IndexUse(days=len(by_day), files_in_range=len(files))
    candidates = {day: indexes.get((day_files[0].table, day), []) for day, day_files in by_day.items()}
    manifests, unreadable = _manifests(con, [i for found in candidates.values() for i in found])
    chosen: dict[dt.date, tuple[LakeFile, Manifest]] = {}
    reasons: dict[dt.date, str] = {}
    for day, found in candidates.items():
        listed = {file_name(f.path): f.size for f in by_day[day]}
        trusted = [(index, manifests[index.path]) for index in found if index.path in manifests
                   and _holds(manifests[index.path], index, listed)]
        if trusted:
            chosen[day] = max(trusted, key=lambda pair: len(pair[1].files))
        else:
            reasons[day] = UNREADABLE if any(i.path in unreadable for i in found) else STALE if found else NO_INDEX
    hits, failed = _hits(con, [index for index, _ in chosen.values()], indicators)
    narrowed = Narrowed([], set(), use)
    for day, day_files in sorted(by_day.items()):
        if day in chosen and chosen[day][0].path not in failed:
            index, manifest = chosen[day]
            use.from_index += 1
            narrowed.columns.update(manifest.columns)
            held = hits.get(index.path, {})
            for f in day_files:
                name = file_name(f.path)
                if name not in manifest.files:
                    narrowed.files.append(f)  # landed after the index was built: read whole
                elif name in held:
                    narrowed.files.append(f)
                    ranges = _row_ranges(manifest.groups.get(name, []), held[name])
                    if ranges is not None:
                        narrowed.rows[f.path] = ranges
        else:
            use.scanned[reasons.get(day, UNREADABLE)] += 1
            narrowed.files += day_files
    use.files_read, use.files_in_part = len(narrowed.files), len(narrowed.rows)
    return narrowed


def _row_ranges(sizes: list[int], groups: set[int]) -> list[tuple[int, int]] | None:
    """The first and last row of each run of the groups; None when that is every group (or the sizes are not
    known)."""
    if not sizes or any(g < 0 or g >= len(sizes) for g in groups) or len(groups) == len(sizes):
        return None
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    ranges: list[tuple[int, int]] = []
    for group in sorted(groups):
        first, last = starts[group], starts[group] + sizes[group] - 1
        if ranges and ranges[-1][1] + 1 == first:
            ranges[-1] = (ranges[-1][0], last)
        else:
            ranges.append((first, last))
    return ranges


def source(paths: list[str], rows: dict[str, list[tuple[int, int]]]) -> str:
    """A FROM-able of the files at `paths` (as DuckDB opens them), each read only in its `rows` ranges when it has
    some: a scan of its own whose filter on file_row_number skips the other row groups."""
    whole = [p for p in paths if p not in rows]
    parts = [f"SELECT * FROM {views.read_parquet(whole)}"] if whole else []
    for path in paths:
        if path in rows:
            ranges = " OR ".join(f"file_row_number BETWEEN {first} AND {last}" for first, last in rows[path])
            parts.append(f"SELECT * EXCLUDE (file_row_number) FROM {views.read_parquet([path], row_numbers=True)} "
                         f"WHERE {ranges}")
    return views.read_parquet(paths) if len(parts) == 1 and whole else "(" + "\n  UNION ALL BY NAME ".join(parts) + ")"


def scanned(files: list[LakeFile], reason: str) -> Narrowed:
    """Every file read, for `reason` (--no-index, or terms the index does not hold)."""
    days = len({f.day for f in files})
    return Narrowed(files, set(), IndexUse(days=days, scanned=Counter({reason: days}) if days else Counter(),
                                           files_in_range=len(files), files_read=len(files)))


def _holds(manifest: Manifest, index: LakeFile, listed: dict[str, int]) -> bool:
    """Whether the index is of its partition and every file it names is listed with the size it had."""
    return (manifest.table == index.table and manifest.day == index.day
            and all(listed.get(name, -2) == size for name, size in manifest.files.items()))


def _manifests(con: duckdb.DuckDBPyConnection, indexes: list[LakeFile]) -> tuple[dict[str, Manifest], set[str]]:
    """Each readable index's manifest by path; the paths of those that do not read or hold none."""
    if not indexes:
        return {}, set()
    paths = [i.path for i in indexes]
    try:
        rows = con.execute("SELECT file_name, value FROM parquet_kv_metadata(?) WHERE key = ?",
                           [paths, METADATA_KEY.encode()]).fetchall()
    except duckdb.Error:
        # One damaged index fails the whole read: find it by reading each alone.
        rows = []
        for path in paths:
            try:
                rows += con.execute("SELECT file_name, value FROM parquet_kv_metadata(?) WHERE key = ?",
                                    [path, METADATA_KEY.encode()]).fetchall()
            except duckdb.Error:
                pass
    manifests: dict[str, Manifest] = {}
    for path, value in rows:
        try:
            manifests[path] = Manifest.from_json(bytes(value))
        except ValueError:
            pass
    return manifests, set(paths) - set(manifests)


def _hits(con: duckdb.DuckDBPyConnection, indexes: list[LakeFile],
          indicators: dict[str, set[str]]) -> tuple[dict[str, dict[str, set[int]]], set[str]]:
    """Per index path, the data file names holding a value, with their row groups holding it; the paths of indexes
    whose rows did not read."""
    if not indexes or not indicators:
        return {}, set()
    condition = " OR ".join(
        f"(kind = {views.quote_literal(kind)} AND value IN ({', '.join(map(views.quote_literal, sorted(values)))}))"
        for kind, values in sorted(indicators.items()))

    def read(paths: list[str]) -> list[tuple[str, str, int]]:
        target = "[" + ", ".join(map(views.quote_literal, paths)) + "]"
        return con.execute(f"SELECT DISTINCT filename, file, row_group FROM read_parquet({target}, filename = true) "
                           f"WHERE {condition}").fetchall()

    paths = [i.path for i in indexes]
    failed: set[str] = set()
    try:
        rows = read(paths)
    except duckdb.Error:
        rows = []
        for path in paths:
            try:
                rows += read([path])
            except duckdb.Error:
                failed.add(path)
    hits: dict[str, dict[str, set[int]]] = {}
    for path, name, group in rows:
        hits.setdefault(path, {}).setdefault(name, set()).add(group)
    return hits, failed


def index_files(names: list[tuple[str, str]]) -> dict[tuple[str, dt.date], list[LakeFile]]:
    """The indexes among (name relative to the lake root, path as DuckDB opens it), by (table, day)."""
    found: dict[tuple[str, dt.date], list[LakeFile]] = {}
    for name, path in names:
        parsed = parse_index_file(name)
        if parsed is not None:
            found.setdefault((parsed.table, parsed.day), []).append(LakeFile(parsed.table, parsed.day, path))
    return found
