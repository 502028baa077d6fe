"""Writing and checking the indicator index of closed day partitions (the format: shared/read/indicator_index.py).

Compaction writes a partition's index from the files it has just written, still in its work folder, so the index
costs a read of their p_any_* columns and a sort, never a second download. A closed partition compaction leaves
alone (one file, or a finished compaction) whose index is missing or names other files (the index's name carries
the digest of the file names it was built from, so the listing alone shows it) gets one from the lake in the same
run. `graphlake index check` reads each index and compares it with one built again from its day (missing, stale,
unreadable or different: each named), and `graphlake index rebuild` writes them again from the lake.

The index is derived data: writing one never changes a data file, and a new one is written before the old ones of
its partition are deleted, so a reader always finds the old or the new, and trusts neither unless its manifest
matches the listing (shared/read/indicator_index.py).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shared.core.errors import one_line
from shared.core.layout import INDEX_FOLDER, files_digest, footer_digest, index_folder, index_name, parse_index_file
from shared.core.storage import Store
from shared.read import index_bloom
from shared.read.indicator_index import BLOOM_KEY, INDICATOR_PREFIX, METADATA_KEY, Manifest

log = logging.getLogger("graphlake.index")

SCHEMA = pa.schema([("kind", pa.string()), ("value", pa.string()), ("file", pa.string()), ("row_group", pa.int32())])
# Small row groups: a search reads the one group of each day its value falls in (~16,384 entries,
# a few hundred KB of values). No parquet bloom filters: they sit outside the footer, nothing verifies them, and a
# damaged one would hide its group's hits. The index's own filter (shared/read/index_bloom.py) is in the footer,
# verified with it by the digest the index's name carries; the page checksums cover every page a reader uses.
ROW_GROUP_ENTRIES = 16_384
# Statistics of kind and value only: a reader chooses row groups by them (or by the manifest's bounds), never by
# file or row group. No Arrow schema in the footer: pyarrow's copy of it (ARROW:schema) carries the schema's
# key-value metadata, so every footer held the manifest twice, and pyarrow decoded the copy again with the schema
# each time a reader opened the index; the manifest is the footer's one key-value entry instead.
_WRITE_OPTIONS = {"compression": "zstd", "use_dictionary": ["kind", "file"], "write_statistics": ["kind", "value"],
                  "write_page_checksum": True, "store_schema": False,
                  "sorting_columns": [pq.SortingColumn(i) for i in range(len(SCHEMA))]}

# Where a data file's bytes are: a local path (compaction's work folder) or the bytes read from the lake.
Source = Path | bytes

OK, MISSING, STALE, UNREADABLE, DIFFERENT, ORPHAN = "ok", "missing", "stale", "unreadable", "different", "orphan"


@dataclass
class IndexFinding:
    table: str
    day: str
    state: str  # OK, MISSING, STALE, UNREADABLE, DIFFERENT or ORPHAN
    detail: str = ""
    rebuilt: bool = False


@dataclass
class IndexSummary:
    lake: str
    checked: int = 0
    rebuilt: int = 0
    removed: int = 0  # indexes of partitions that hold no files any more
    findings: list[IndexFinding] = field(default_factory=list)  # every index not OK

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()


def _row_group(sizes: list[int]) -> str:
    """SQL giving the row group of `file_row_number` in a file of groups of these sizes: a division where every
    group but a smaller last has one size (what compaction writes), else a count of the group starts at or before
    the row."""
    if sizes and sizes[0] and len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0]:
        return f"CAST(file_row_number // {sizes[0]} AS INTEGER)"
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return f"CAST(len(list_filter({starts}, s -> s <= file_row_number)) - 1 AS INTEGER)"


def _kinds(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if f.name.startswith(INDICATOR_PREFIX)
            and (pa.types.is_list(f.type) or pa.types.is_large_list(f.type))]


def build_local(table: str, day: dt.date, files: Sequence[tuple[str, Path, int]]) -> bytes:
    """The index of a partition's files, given as (name in the partition, local path, size): parquet bytes.

    DuckDB unnests every p_any_* list of every file (only those columns are read, in parallel) into distinct
    (kind, value, file, row_group) and sorts them; pyarrow writes them with page checksums and the manifest."""
    selects, columns, groups = [], [], {}
    for name, path, _ in files:
        metadata = pq.read_metadata(path)
        groups[name] = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        schema = metadata.schema.to_arrow_schema()
        columns += [c for c in schema.names if c not in columns]
        group = _row_group(groups[name])
        for kind in _kinds(schema):
            selects.append(f"SELECT {_literal(kind)} AS kind, unnest({_identifier(kind)}) AS value, "
                           f"{_literal(name)} AS file, {group} AS row_group "
                           f"FROM read_parquet({_literal(str(path))}, file_row_number = true)")
    if selects:
        # Sorted whole, not only by (kind, value) as readers prune: the same files give the same bytes, so a
        # compaction run again after a crash leaves the lake exactly as one that was not stopped.
        sql = (f"SELECT DISTINCT kind, value, file, row_group\nFROM ({' UNION ALL '.join(selects)})\n"
               f"WHERE value IS NOT NULL\nORDER BY ALL")
        con = duckdb.connect()
        try:
            rows = con.sql(sql).to_arrow_table().cast(SCHEMA)
        finally:
            con.close()
    else:
        rows = SCHEMA.empty_table()
    starts = list(range(0, rows.num_rows, ROW_GROUP_ENTRIES))
    lasts = [min(start + ROW_GROUP_ENTRIES, rows.num_rows) - 1 for start in starts]
    edges = rows.select(["kind", "value"]).take(pa.array(starts + lasts, pa.int64())).to_pylist()
    bounds = tuple((first["kind"], first["value"], last["kind"], last["value"])
                   for first, last in zip(edges[:len(starts)], edges[len(starts):], strict=True))
    bloom = index_bloom.build(rows["kind"], rows["value"])
    manifest = Manifest(table, day, {name: size for name, _, size in files}, tuple(columns), groups, bounds,
                        (index_bloom.SCHEME, bloom.bits, bloom.hashes))
    out = io.BytesIO()
    with pq.ParquetWriter(out, SCHEMA, **_WRITE_OPTIONS) as writer:
        writer.write_table(rows, row_group_size=ROW_GROUP_ENTRIES)
        writer.add_key_value_metadata({METADATA_KEY: manifest.to_json(), BLOOM_KEY: bloom.data})
    return out.getvalue()


def build(table: str, day: dt.date, files: Iterable[tuple[str, Source, int]]) -> bytes:
    """The index of a partition's files, given as (name in the partition, bytes or local path, size); bytes are
    put in a local work folder first, one file at a time."""
    with tempfile.TemporaryDirectory(prefix="graphlake-index-") as work:
        local = []
        for number, (name, source, size) in enumerate(files):
            if not isinstance(source, Path):
                path = Path(work) / f"{number:06d}.parquet"
                path.write_bytes(source)
                source = path
            local.append((name, source, size))
        return build_local(table, day, local)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_index(store: Store, table: str, day: dt.date, files: Iterable[tuple[str, Source, int]]) -> str:
    """Build and write the partition's index, then delete its other indexes. The index's name."""
    files = list(files)
    data = build(table, day, files)
    name = index_name(table, day, [n for n, _, _ in files], footer_digest(data))
    store.write(name, data)
    for old in partition_indexes(store, table, day):
        if old != name:
            store.delete(old)
    return name


def partition_indexes(store: Store, table: str, day: dt.date) -> list[str]:
    return [n for n in store.list(index_folder(table, day)) if parse_index_file(n) is not None]


def index_from_lake(store: Store, table: str, day: dt.date, names: Sequence[str]) -> str:
    """Build the partition's index from its files in the lake (`names`, full names), one file in memory at a time."""
    def read() -> Iterator[tuple[str, Source, int]]:
        for name in names:
            blob = store.read(name)
            if blob is not None:  # gone since listed: another compaction replaced it; its index comes next run
                yield name.rsplit("/", 1)[1], blob.data, len(blob.data)
    return write_index(store, table, day, read())


def is_current(index_names: Sequence[str], names: Sequence[str]) -> bool:
    """Whether one of the partition's indexes was built from exactly these files (full names), by its name (one of
    the first format, whose name carries no footer digest, is not: readers do not trust it)."""
    return bool(_current(index_names, names))


def _current(index_names: Sequence[str], names: Sequence[str]) -> list[str]:
    digest = files_digest([n.rsplit("/", 1)[1] for n in names])
    return [n for n in index_names if parse_index_file(n).files == digest and parse_index_file(n).footer]


def listed_indexes(store: Store, tables: Sequence[str] | None = None) -> dict[tuple[str, dt.date], list[str]]:
    """Every index of the lake (or of the tables), by (table, day)."""
    prefixes = [f"{INDEX_FOLDER}/{t}/" for t in tables] if tables else [f"{INDEX_FOLDER}/"]
    found: dict[tuple[str, dt.date], list[str]] = {}
    for prefix in prefixes:
        for name in store.list(prefix):
            parsed = parse_index_file(name)
            if parsed is not None:
                found.setdefault((parsed.table, parsed.day), []).append(name)
    return found


def check_index(store: Store, table: str, day: dt.date, names: Sequence[str],
                index_names: Sequence[str]) -> IndexFinding:
    """The partition's index against its files: missing, stale (built from other files), unreadable, different
    (its entries or manifest are not what its files give), or OK. Reads the files."""
    finding = IndexFinding(table, day.isoformat(), OK)
    current = _current(index_names, names)
    if not current:
        finding.state, finding.detail = (STALE, "built from other files, or of an older format") if index_names \
            else (MISSING, "")
        return finding
    blob = store.read(current[0])
    if blob is None:
        finding.state = MISSING
        return finding
    if footer_digest(blob.data) != parse_index_file(current[0]).footer:
        finding.state, finding.detail = UNREADABLE, "its footer is not the one its name carries"
        return finding
    try:
        # Every page, its checksum verified: the damage a search's footer read cannot see.
        stored = pq.read_table(io.BytesIO(blob.data), use_threads=False, page_checksum_verification=True)
        manifest = Manifest.from_json(stored.schema.metadata[METADATA_KEY.encode()])
    except (pa.ArrowException, ValueError, KeyError, TypeError, OSError) as exc:
        finding.state, finding.detail = UNREADABLE, one_line(exc)
        return finding
    files = []
    for name in names:
        data = store.read(name)
        if data is not None:
            files.append((name.rsplit("/", 1)[1], data.data, len(data.data)))
    expected = pq.read_table(io.BytesIO(build(table, day, files)), use_threads=False)
    want = Manifest.from_json(expected.schema.metadata[METADATA_KEY.encode()])
    if manifest != want:
        finding.state, finding.detail = DIFFERENT, "its manifest does not match the files"
    elif stored.schema.metadata.get(BLOOM_KEY.encode()) != expected.schema.metadata.get(BLOOM_KEY.encode()):
        finding.state, finding.detail = DIFFERENT, "its bloom filter does not match the files"
    elif not stored.replace_schema_metadata(None).equals(expected.replace_schema_metadata(None)):
        finding.state = DIFFERENT
        finding.detail = f"{stored.num_rows} entries where its files give {expected.num_rows}, or other values"
    return finding


def check_lake(store: Store, *, tables: Sequence[str] | None = None, days: Sequence[dt.date] | None = None,
               closed_before: dt.date, rebuild: bool = False, force: bool = False) -> IndexSummary:
    """Check (or with `force`, rewrite) the index of every closed partition (or of `days`); with `rebuild`, write
    again each that is not OK, and remove indexes whose partition holds no files."""
    from shared.ops.compact import partitions  # compaction writes indexes: imported here, not at the top

    summary = IndexSummary(lake=store.url)
    indexes = listed_indexes(store, tables)
    seen: set[tuple[str, dt.date]] = set()
    for partition in partitions(store, tables):
        key = (partition.table, partition.day)
        seen.add(key)
        if partition.day >= closed_before or (days and partition.day not in days):
            continue
        summary.checked += 1
        if force:
            finding = IndexFinding(partition.table, partition.day.isoformat(), OK)
        else:
            finding = check_index(store, partition.table, partition.day, partition.files, indexes.get(key, []))
        if finding.state != OK:
            summary.findings.append(finding)
        if force or (rebuild and finding.state != OK):
            index_from_lake(store, partition.table, partition.day, partition.files)
            finding.rebuilt = True
            summary.rebuilt += 1
    for (table, day), names in sorted(indexes.items()):
        if (table, day) in seen or (days and day not in days):
            continue
        summary.findings.append(IndexFinding(table, day.isoformat(), ORPHAN, "its partition holds no files",
                                             rebuilt=rebuild))
        if rebuild:
            for name in names:
                store.delete(name)
            summary.removed += 1
    return summary


