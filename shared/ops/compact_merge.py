"""One day partition merged in bounded memory: deduplicated on p_row_id, sorted, and written as parquet files on local
disk, whatever the partition's size.

The partition never sits in memory whole. Its files are copied to a local work folder one at a time, then:

1. **Buckets by p_row_id range.** Split points come from a sample of the row ids, so each bucket holds about
   `memory_bytes / _BUCKET_SHARE` of the partition. Every file is read one row group at a time and its rows go to
   the bucket of their id, with two hidden columns (the file's rank in name order, the row's index in the file).
   Every copy of an id lands in the same bucket, so a bucket alone decides which copy is kept.
2. **A sorted run per bucket.** A bucket is read whole, keeps one row per p_row_id (the earliest p_parse_time, ties
   to the first file in name order, then the first row), is sorted by (p_event_time, p_row_id) and written back as a
   run. The runs' kept ids are disjoint ranges in id order, so the digest that names the outputs is fed run by run.
3. **A k-way merge of the runs** yields the partition in order, a slice of each run at a time, into parquet writers
   that cut row groups of exactly `rows_per_group` rows and files of the planned row counts.

Peak memory is about `memory_bytes` (one bucket and its sorted copy, or one slice of every run), plus one row group
of an input file and one output row group; files are never held whole, except one output file while it is uploaded.
The result depends only on the partition's rows, never on how they were split into files or buckets.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from normalizers.names import LEGACY_LOG_TYPE, LOG_TYPE
from shared.core.errors import one_line
from shared.core.lake_files import read_named
from shared.land.lake_writer import check_lake_columns
from shared.core.storage import Store

DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024
# A bucket is read whole, then sorted into a copy, and Arrow holds values less compactly than parquet's plain pages.
_BUCKET_SHARE = 4
# The merge holds a slice of every run, concatenated and sorted into a copy, beside the output row group it fills.
_SLICES_SHARE = 8
# Each bucket is an open file while rows are bucketed; past this many, buckets grow beyond the budget instead.
_MAX_BUCKETS = 256
_SAMPLE_IDS = 100_000
_FILE = "__graphlake_file"
_ROW = "__graphlake_row"
_SORT_KEYS = [("p_event_time", "ascending"), ("p_row_id", "ascending")]
# Intermediate files are Arrow IPC streams, read back once or twice: unlike a parquet writer, which keeps every row
# group's metadata until it closes, a stream writer holds nothing per batch written.
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


@dataclass
class Runs:
    """The partition's rows, deduplicated, as sorted runs in a work folder."""

    paths: list[Path]
    schema: pa.Schema
    rows_in: int
    rows_out: int
    value_bytes: int  # of the kept rows: string lengths, fixed widths (see value_bytes)
    digest: str  # shared.land.lake_writer.rows_digest of the kept rows' ids
    slice_rows: int  # rows of each run read at a time by the merge


@dataclass
class Spooled:
    """The partition's files copied to the work folder."""

    inputs: list[str] = field(default_factory=list)  # store names, in name order
    paths: list[Path] = field(default_factory=list)
    bytes_in: int = 0


def spool(store: Store, names: tuple[str, ...], work: Path) -> Spooled:
    """Copy each file to work, one at a time; ValueError for a file that is not parquet. Files gone since the
    listing (another compaction finished them) are skipped."""
    spooled = Spooled()
    for name, data in read_named(store, names):
        path = work / f"in-{len(spooled.paths):06d}.parquet"
        path.write_bytes(data)
        spooled.bytes_in += len(data)
        del data
        try:
            pq.read_metadata(path)
        except pa.ArrowException as exc:
            raise ValueError(f"{name.rsplit('/', 1)[1]} is not readable parquet: {one_line(exc)}") from None
        spooled.inputs.append(name)
        spooled.paths.append(path)
    return spooled


def sorted_runs(paths: list[Path], work: Path, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> Runs:
    """Deduplicate the files' rows into sorted runs (steps 1 and 2). The files are deleted as they are bucketed."""
    # Footers only, and one distinct schema each: a reader kept open per file would cost memory per file.
    schemas: list[pa.Schema] = []
    rows_in = size = 0
    for path in paths:
        metadata = pq.read_metadata(path)
        rows_in += metadata.num_rows
        size += sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        schema = metadata.schema.to_arrow_schema()
        if not any(schema.equals(known, check_metadata=True) for known in schemas):
            schemas.append(schema)
    schema = _unified_schema(schemas)
    buckets = min(_MAX_BUCKETS, max(1, math.ceil(size * _BUCKET_SHARE / memory_bytes)))
    splits = _split_points(paths, rows_in, buckets) if buckets > 1 else []
    bucket_paths = _bucketed(paths, schema, splits, work)
    runs = Runs([], schema, rows_in, 0, 0, "", 1)
    digest = hashlib.sha256(b"[")
    per_row = max(1.0, size / max(rows_in, 1))
    runs.slice_rows = max(1, int(memory_bytes / _SLICES_SHARE / per_row / max(len(bucket_paths), 1)))
    for number, bucket_path in enumerate(bucket_paths):
        kept = _deduplicated(_read_all(bucket_path))
        bucket_path.unlink()
        ids = pc.sort_indices(kept["p_row_id"])
        if kept.num_rows:
            # orjson of the sorted list, written piece by piece: the same bytes as shared.land.lake_writer.rows_digest.
            digest.update((b"," if runs.rows_out else b"") + orjson.dumps(kept["p_row_id"].take(ids).to_pylist())[1:-1])
        kept = kept.take(pc.sort_indices(kept, sort_keys=_SORT_KEYS)).drop_columns([_FILE, _ROW])
        runs.rows_out += kept.num_rows
        runs.value_bytes += sum(value_bytes(column) for column in kept.columns)
        run_path = work / f"run-{number:04d}.arrows"
        with pa.OSFile(str(run_path), "wb") as sink, pa.ipc.new_stream(sink, kept.schema, options=_IPC_OPTIONS) as out:
            out.write_table(kept, max_chunksize=runs.slice_rows)
        runs.paths.append(run_path)
        del kept
    digest.update(b"]")
    runs.digest = digest.hexdigest()[:20]
    return runs


def merged(runs: Runs) -> Iterator[pa.Table]:
    """The runs' rows in (p_event_time, p_row_id) order, a slice at a time (step 3)."""
    readers = [_batches(path) for path in runs.paths]
    buffers: list[pa.Table | None] = [None] * len(readers)
    while True:
        for i, reader in enumerate(readers):
            if reader is not None and (buffers[i] is None or not buffers[i].num_rows):
                batch = next(reader, None)
                if batch is None:
                    readers[i], buffers[i] = None, None
                else:
                    buffers[i] = pa.Table.from_batches([batch])
        live = [i for i, buffer in enumerate(buffers) if buffer is not None and buffer.num_rows]
        if not live:
            return
        if len(live) == 1:
            yield buffers[live[0]]
            buffers[live[0]] = None
            continue
        # Every row up to the smallest of the buffers' last keys can go: no run holds a smaller key after it. Ids
        # are unique across runs, so the key is a total order and the run holding it is emptied.
        frontier = min((_key(buffers[i], -1) for i in live), key=lambda k: (k[0].value, k[1].as_py()))
        pieces = []
        for i in live:
            buffer = buffers[i]
            times, ids = buffer["p_event_time"], buffer["p_row_id"]
            upto = pc.or_(pc.less(times, frontier[0]),
                          pc.and_(pc.equal(times, frontier[0]), pc.less_equal(ids, frontier[1])))
            count = pc.sum(pc.cast(upto, pa.int64())).as_py() or 0
            if count:
                pieces.append(buffer.slice(0, count))
                buffers[i] = buffer.slice(count)
        out = pa.concat_tables(pieces)
        yield out.take(pc.sort_indices(out, sort_keys=_SORT_KEYS))


def write_files(runs: Runs, work: Path, file_rows: list[int], group_rows: int, options: dict,
                prefix: str) -> list[Path]:
    """Write the merged rows as parquet files of file_rows rows each, in row groups of group_rows rows (a file's
    last group holds the rest)."""
    paths = [work / f"{prefix}-{k:04d}.parquet" for k in range(1, len(file_rows) + 1)]
    sorting = pq.SortingColumn.from_ordering(runs.schema, _SORT_KEYS)
    rows = _Rows(merged(runs))
    for path, count in zip(paths, file_rows):
        with pq.ParquetWriter(path, runs.schema, sorting_columns=sorting, **options) as writer:
            for start in range(0, count, group_rows):
                size = min(group_rows, count - start)
                writer.write_table(rows.take(size), row_group_size=size)
    return paths


class _Rows:
    """A stream of tables read by row counts."""

    def __init__(self, chunks: Iterator[pa.Table]) -> None:
        self._chunks = chunks
        self._buffer: list[pa.Table] = []
        self._held = 0

    def take(self, size: int) -> pa.Table:
        while self._held < size:
            chunk = next(self._chunks)
            self._buffer.append(chunk)
            self._held += chunk.num_rows
        table = pa.concat_tables(self._buffer)
        rest = table.slice(size)
        self._buffer, self._held = ([rest] if rest.num_rows else []), rest.num_rows
        return table.slice(0, size)


def group_rows(value_bytes: int, rows: int, max_rows: int, max_bytes: int) -> int:
    """max_rows, fewer if that many rows hold more than max_bytes of values."""
    if not rows:
        return max_rows
    return max(1, min(max_rows, int(max_bytes / max(value_bytes / rows, 1))))


def work_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="graphlake-compact-")


def _unified_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """The schema of all files: column order of the widest (newest) file, a column some files lack is nullable."""
    widest_first = sorted(schemas, key=len, reverse=True)
    schema = pa.unify_schemas(widest_first, promote_options="default")
    everywhere = set.intersection(*(set(s.names) for s in schemas))
    return pa.schema([f if f.name in everywhere else f.with_nullable(True) for f in schema], metadata=schema.metadata)


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema]
    columns = [c.cast(f.type) if c.type != f.type else c for c, f in zip(columns, schema)]
    if "p_log_type" in schema.names:
        # Rows landed before the log type took Panther's name are written with it (the views already read them so).
        at = schema.get_field_index("p_log_type")
        if pa.types.is_string(schema.field(at).type):
            columns[at] = pc.if_else(pc.equal(columns[at], LEGACY_LOG_TYPE), LOG_TYPE, columns[at])
    conformed = pa.Table.from_arrays(columns, schema=schema)
    check_lake_columns(conformed)
    return conformed


def _split_points(paths: list[Path], rows: int, buckets: int) -> list[str]:
    """Row ids that cut the partition into about `buckets` ranges of equal row counts, from a sample of every
    step-th id."""
    step = max(1, rows // _SAMPLE_IDS)
    samples = []
    for path in paths:
        # No reader threads, as in shared/core/lake_files.py: they can outlive the interpreter of a command.
        ids = pq.read_table(path, columns=["p_row_id"], use_threads=False)["p_row_id"]
        samples.append(ids.take(pa.array(range(0, len(ids), step), pa.int64())).combine_chunks())
    sample = pa.concat_arrays([s.cast(pa.string()) for s in samples]).drop_null()
    sample = sample.take(pc.sort_indices(sample))
    points = {sample[len(sample) * j // buckets].as_py() for j in range(1, buckets)} if len(sample) else set()
    return sorted(points)


def _bucketed(inputs: list[Path], schema: pa.Schema, splits: list[str], work: Path) -> list[Path]:
    """Every row into the bucket of its id's range, with its file rank and row index; the buckets' paths. Each
    input is deleted once bucketed."""
    work_schema = schema.append(pa.field(_FILE, pa.int32())).append(pa.field(_ROW, pa.int64()))
    paths = [work / f"bucket-{b:04d}.arrows" for b in range(len(splits) + 1)]
    sinks = [pa.OSFile(str(path), "wb") for path in paths]
    writers = [pa.ipc.new_stream(sink, work_schema, options=_IPC_OPTIONS) for sink in sinks]
    split_scalars = [pa.scalar(s, pa.string()) for s in splits]
    try:
        for rank, path in enumerate(inputs):
            offset = 0
            f = pq.ParquetFile(path)
            for i in range(f.metadata.num_row_groups):
                group = _conformed(f.read_row_group(i, use_threads=False), schema)
                group = group.append_column(_FILE, pa.array([rank] * group.num_rows, pa.int32())).append_column(
                    _ROW, pa.array(range(offset, offset + group.num_rows), pa.int64()))
                offset += group.num_rows
                if not splits:
                    writers[0].write_table(group)
                    continue
                ids = group["p_row_id"].cast(pa.string())
                bucket = pa.array([0] * group.num_rows, pa.int32())
                for point in split_scalars:
                    bucket = pc.add(bucket, pc.cast(pc.greater_equal(ids, point), pa.int32()))
                for b, writer in enumerate(writers):
                    part = group.filter(pc.equal(bucket, b))
                    if part.num_rows:
                        writer.write_table(part)
                del group
            f.close()
            path.unlink()  # bucketed: the copy is no longer needed, and local disk is small
    finally:
        for writer, sink in zip(writers, sinks):
            writer.close()
            sink.close()
    return paths


def _read_all(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    with pa.OSFile(str(path)) as source:
        yield from pa.ipc.open_stream(source)


def _deduplicated(table: pa.Table) -> pa.Table:
    """One row per p_row_id: the earliest p_parse_time (nulls last), then the first file in name order, then the
    first row."""
    keys = [("p_row_id", "ascending")]
    if "p_parse_time" in table.column_names:
        keys.append(("p_parse_time", "ascending"))
    keys += [(_FILE, "ascending"), (_ROW, "ascending")]
    order = pc.sort_indices(table, sort_keys=keys)
    ids = table["p_row_id"].take(order)
    if len(ids) > 1:
        first = pa.concat_arrays([pa.array([True]), pc.not_equal(ids[1:], ids[:-1]).combine_chunks()])
        order = order.filter(first)
    return table.take(order)


def _key(table: pa.Table, index: int) -> tuple[pa.Scalar, pa.Scalar]:
    return table["p_event_time"][index], table["p_row_id"][index]


def value_bytes(values: pa.ChunkedArray | pa.Array) -> int:
    """Bytes of values (string lengths, fixed widths), not of Arrow's buffers, so the same rows always count the
    same however they were split."""
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or \
            pa.types.is_large_binary(kind):
        return (pc.sum(pc.binary_length(values)).as_py() or 0) + 4 * len(values)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return value_bytes(pc.list_flatten(values)) + 4 * len(values)
    if pa.types.is_struct(kind):
        flat = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        return sum(value_bytes(flat.field(i)) for i in range(kind.num_fields))
    width = getattr(kind, "bit_width", 64) if not pa.types.is_nested(kind) else 64
    return len(values) * max(width, 8) // 8

