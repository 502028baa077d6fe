"""The indicator index: which files of a closed day partition hold an indicator value, read to narrow a search.

Compaction writes one index per closed partition (shared/ops/index_build.py), at
`_index/<table>/year=/month=/day=/indicators-<digest of the partition's file names>-<digest of its footer>.parquet`
(shared/core/layout.py): one row per (kind, value, file, row_group), `kind` a p_any_* column, `value` one canonical
value of it, `file` the name of a data file of the partition holding it in that row group; sorted by (kind, value) in
small row groups, so a lookup reads the one row group of each index its (kind, value) falls in. Its parquet
key-value metadata (METADATA_KEY) holds the manifest: the data files it was built from with their sizes and the row
counts of their row groups, their columns, and the first and last (kind, value) of each of the index's row groups;
BLOOM_KEY a bloom filter of its (kind, value) entries (shared/read/index_bloom.py), so most days of a sweep are done
at their footer.

Every byte a search uses is verified, so damage makes it read the day whole, never miss a hit: the footer (the
statistics that choose the row groups, the manifest, the bloom filter) against the digest in the index's name, then
each page of the row groups read against its CRC (pyarrow; DuckDB does not check page checksums). An index whose name
carries no footer digest (the first format) is not trusted. What is not read (other row groups) is not verified here;
`graphlake index check` reads it all.

An index only narrows which files a search reads, and which row groups of them (a file read in part is a scan of
its own, filtered on file_row_number, which DuckDB prunes row groups by); the search's own SQL then runs on them, so
a search with the index and one without give the same hits as long as the index is right. It is trusted for a day
only when it verifies, its manifest is of this format and partition, and every file it names is in the listing with
the size it had (compaction names files by their rows, so a re-compacted day has other names). Files the listing
holds and the manifest does not (a late batch landed after the index) are read as well; any other disagreement, a
damaged index, or none at all, and the day's files are all read, as without an index. Needs pyarrow, not DuckDB:
the Spark reader (shared.read.spark) reads the index with it too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

import orjson

from shared.core.layout import INDEX_FOLDER, footer_digest, parse_index_file
from shared.read import views

if TYPE_CHECKING:  # lake_reader imports fsspec: the Spark reader imports this module without it
    from shared.read.lake_reader import LakeFile

FORMAT = 1
METADATA_KEY = "graphlake.indicator_index"
BLOOM_KEY = "graphlake.indicator_bloom"  # the bloom filter's bytes (shared/read/index_bloom.py), beside the manifest
INDICATOR_PREFIX = "p_any_"
# Why a day's files were all read: the reasons a search prints.
NO_INDEX = "no index (open or not yet indexed)"
STALE = "index stale (files changed since it was built)"
UNREADABLE = "index damaged (unreadable, or not what was written)"
NOT_INDEXED_KIND = "evidence kinds are not indexed"

# Opens a file by its path as listed (LakeFile.path) for reading: a seekable binary file pyarrow reads.
Opener = Callable[[str], BinaryIO]


@dataclass(frozen=True)
class Manifest:
    table: str
    day: dt.date
    files: dict[str, int]  # data file name in the partition -> size in bytes
    columns: tuple[str, ...]  # the data files' columns
    groups: dict[str, list[int]] = field(default_factory=dict)  # data file name -> rows of each row group
    # The index's own row groups: the first and last (kind, value) of each, as [kind, value, kind, value]. Column
    # statistics give a group's least kind and least value separately, so a group across two kinds spans every
    # value; these bounds take a lookup to the one group its (kind, value) falls in.
    bounds: tuple[tuple[str, str, str, str], ...] = ()
    # The bloom filter's parameters (scheme, bits, hashes), its bytes the footer's BLOOM_KEY entry; None: no filter
    # (an index written before it), every row group its statistics choose is read.
    bloom: tuple[int, int, int] | None = None

    def to_json(self) -> bytes:
        return orjson.dumps({"format": FORMAT, "table": self.table, "day": self.day.isoformat(),
                             "files": dict(sorted(self.files.items())), "columns": list(self.columns),
                             "groups": dict(sorted(self.groups.items())), "bounds": [list(b) for b in self.bounds],
                             "bloom": list(self.bloom) if self.bloom else None})

    @staticmethod
    def from_json(data: bytes | str) -> Manifest:
        """ValueError when it is not a manifest of this format."""
        try:
            doc = orjson.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"index format {doc.get('format')!r}, not {FORMAT}")
            return Manifest(str(doc["table"]), dt.date.fromisoformat(doc["day"]),
                            {str(k): int(v) for k, v in doc["files"].items()}, tuple(map(str, doc["columns"])),
                            {str(k): [int(n) for n in v] for k, v in doc["groups"].items()},
                            tuple(tuple(map(str, b)) for b in doc.get("bounds", [])),
                            tuple(int(n) for n in doc["bloom"]) if doc.get("bloom") else None)
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


def narrow(open_file: Opener, files: list[LakeFile], indexes: dict[tuple[str, dt.date], list[LakeFile]],
           indicators: dict[str, set[str]]) -> Narrowed:
    """The files of one table's range that can hold a row matching `indicators` (p_any column -> values).
    `open_file` opens an index's path (as listed) for reading."""
    by_day: dict[dt.date, list[LakeFile]] = {}
    for f in files:
        by_day.setdefault(f.day, []).append(f)
    use = IndexUse(days=len(by_day), files_in_range=len(files))
    narrowed = Narrowed([], set(), use)
    days = sorted(by_day.items())
    # Indexes read side by side: pyarrow decodes and checks pages without the GIL, and a remote read waits.
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        served_days = list(pool.map(lambda item: read_day(
            open_file, indexes.get((item[1][0].table, item[0]), []), {file_name(f.path): f.size for f in item[1]},
            indicators), days))
    for (day, day_files), served in zip(days, served_days, strict=True):
        if isinstance(served, str):
            use.scanned[served] += 1
            narrowed.files += day_files
            continue
        manifest, held = served
        use.from_index += 1
        narrowed.columns.update(manifest.columns)
        for f in day_files:
            name = file_name(f.path)
            if name not in manifest.files:
                narrowed.files.append(f)  # landed after the index was built: read whole
            elif name in held:
                narrowed.files.append(f)
                ranges = _row_ranges(manifest.groups.get(name, []), held[name])
                if ranges is not None:
                    narrowed.rows[f.path] = ranges
    use.files_read, use.files_in_part = len(narrowed.files), len(narrowed.rows)
    return narrowed


def read_day(open_file: Opener, found: list[LakeFile], listed: dict[str, int],
             indicators: dict[str, set[str]]) -> tuple[Manifest, dict[str, set[int]]] | str:
    """What a day's index says of `indicators`: its manifest and, per data file name, the row groups holding a
    value; or why the day is to be read whole (NO_INDEX, STALE, UNREADABLE). `found`: the day's indexes as listed;
    `listed`: the day's data files, name -> size. Of several indexes that hold, the one of the most files."""
    if not found:
        return NO_INDEX
    served: list[tuple[Manifest, dict[str, set[int]]]] = []
    damaged = False
    for index in found:
        try:
            result = _read(open_file, index, listed, indicators)
        except Damaged:
            damaged = True
            continue
        if result is not None:
            served.append(result)
    if served:
        return max(served, key=lambda pair: len(pair[0].files))
    return UNREADABLE if damaged else STALE


class Damaged(Exception):
    """An index that does not read, or is not what was written (its footer against its name, a page against its
    checksum)."""


def _read(open_file: Opener, index: LakeFile, listed: dict[str, int],
          indicators: dict[str, set[str]]) -> tuple[Manifest, dict[str, set[int]]] | None:
    """The index's manifest and hits, every byte used verified; None when it does not hold for the listing."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parsed = parse_index_file(index.path[index.path.rfind(INDEX_FOLDER + "/"):])
    if parsed is None or not parsed.footer:
        return None  # a name of the first format carries no footer digest: nothing to verify it by
    try:
        with open_file(index.path) as handle:
            footer = _footer(handle)
            if footer_digest(footer) != parsed.footer:
                raise Damaged("its footer is not the one its name carries")
            metadata = pq.read_metadata(pa.BufferReader(_MAGIC + footer))
            entries = metadata.metadata or {}
            manifest = Manifest.from_json(entries[METADATA_KEY.encode()])
            if not _holds(manifest, index, listed):
                return None
            if not _may_hold(manifest, entries.get(BLOOM_KEY.encode()), indicators):
                return manifest, {}  # the bloom filter, verified with the footer: no value searched is in the day
            groups = _groups(metadata, manifest, indicators)
            if not groups or not indicators:
                return manifest, {}
            # Only the row groups whose statistics (verified with the footer) span a value; every page read checked
            # against its CRC. First the values alone (and the kinds where a group holds several), then the files
            # and row groups of the entries that match, if any: most days of a sweep hold none.
            reader = pq.ParquetFile(handle, metadata=metadata, page_checksum_verification=True)
            held: dict[str, set[int]] = {}
            for number in groups:
                kinds = metadata.row_group(number).column(0).statistics
                one_kind = kinds is not None and kinds.has_min_max and kinds.min == kinds.max
                rows = reader.read_row_group(number, columns=["value"] if one_kind else ["kind", "value"],
                                             use_threads=False)
                wanted = None
                for kind, values in indicators.items():
                    if one_kind and kind != kinds.min:
                        continue
                    match = pc.is_in(rows["value"], pa.array(sorted(values), pa.string()))
                    if not one_kind:
                        match = pc.and_(pc.equal(rows["kind"], kind), match)
                    wanted = match if wanted is None else pc.or_(wanted, match)
                if wanted is None or not pc.any(wanted).as_py():
                    continue
                where = reader.read_row_group(number, columns=["file", "row_group"], use_threads=False).filter(wanted)
                for name, group in zip(*where.to_pydict().values(), strict=True):
                    held.setdefault(name, set()).add(group)
    except Damaged:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        raise Damaged(str(exc)) from None
    return manifest, held


_MAGIC = b"PAR1"
_READERS = 4
# One read holds the footer of a day's index: a few KB a hundred row groups, and its bloom filter, a byte a distinct
# value (~300 KB a day of 274,000 sign-ins); a bigger one takes a second read.
_TAIL = 512 * 1024


def _footer(handle: BinaryIO) -> bytes:
    """The file's footer: its metadata, length and magic."""
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(max(size - _TAIL, 0))
    tail = handle.read()
    if len(tail) < 8 or tail[-4:] != _MAGIC:
        raise Damaged("not parquet")
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > size - len(_MAGIC):
        raise Damaged("its footer is longer than the file")
    if length + 8 > len(tail):
        handle.seek(size - 8 - length)
        tail = handle.read(length + 8)
    return tail[len(tail) - 8 - length:]


def _may_hold(manifest: Manifest, bloom: bytes | None, indicators: dict[str, set[str]]) -> bool:
    """Whether the index may hold one of the values, by its bloom filter; True when it has none of this scheme."""
    from shared.read import index_bloom  # numpy and pyarrow: loaded when an index is read, not when search starts

    if manifest.bloom is None or bloom is None or manifest.bloom[0] != index_bloom.SCHEME:
        return True
    filter_ = index_bloom.Bloom(manifest.bloom[1], manifest.bloom[2], bloom)
    return any(filter_.may_hold(kind, values) for kind, values in indicators.items())


def _groups(metadata, manifest: Manifest, indicators: dict[str, set[str]]) -> list[int]:
    """The row groups that can hold one of the values: by the manifest's bounds of each (entries are sorted by
    (kind, value)), else by the column statistics, where a group of one kind spans a value range and one across
    kinds is read."""
    if len(manifest.bounds) == metadata.num_row_groups:
        wanted = [(kind, value) for kind, values in indicators.items() for value in values]
        return [number for number, (first_kind, first, last_kind, last) in enumerate(manifest.bounds)
                if any((first_kind, first) <= pair <= (last_kind, last) for pair in wanted)]
    groups = []
    for number in range(metadata.num_row_groups):
        group = metadata.row_group(number)
        kinds, values = group.column(0).statistics, group.column(1).statistics
        if kinds is None or values is None or not kinds.has_min_max or not values.has_min_max:
            groups.append(number)
            continue
        for kind, wanted in indicators.items():
            if kinds.min <= kind <= kinds.max and (
                    kinds.min != kinds.max or any(values.min <= value <= values.max for value in wanted)):
                groups.append(number)
                break
    return groups


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


def index_files(names: list[tuple[str, str]]) -> dict[tuple[str, dt.date], list[LakeFile]]:
    """The indexes among (name relative to the lake root, path as DuckDB opens it), by (table, day)."""
    from shared.read.lake_reader import LakeFile

    found: dict[tuple[str, dt.date], list[LakeFile]] = {}
    for name, path in names:
        parsed = parse_index_file(name)
        if parsed is not None:
            found.setdefault((parsed.table, parsed.day), []).append(LakeFile(parsed.table, parsed.day, path))
    return found
