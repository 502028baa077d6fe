"""Compaction: merges the small files that per-batch writes leave in a closed day partition into a few large ones.

Works on any table of the lake (`<table>/year=YYYY/month=MM/day=DD/<name>.parquet`, every table with p_event_time
and p_row_id), through the `Store` seam, so the same code compacts a local folder, Blob Storage and Azurite.

Per partition, one at a time, in bounded memory whatever the partition's size (shared/ops/compact_merge.py: the
partition goes through a local work folder, never through memory whole):

1. read every file (columns a file lacks are null-filled, so files written before a column was added still merge);
2. drop repeated p_row_ids (the same alert version delivered twice), keeping the copy parsed first (the one the
   lake's views show, so what an analyst sees does not change when compaction runs); ties go to the first file
   in name order;
3. sort by (p_event_time, p_row_id) and cut into files of at most the target size, with row groups of at most
   ROW_GROUP_ROWS rows and ROW_GROUP_BYTES of values;
4. write every output, and only then delete the inputs that are not outputs.

Crash safety: outputs are written before anything is deleted, so at every moment every row is in some file; between
the writes and the deletes some rows are in two files, which readers absorb by deduplicating on p_row_id (as they
must anyway for at-least-once delivery). Output names depend only on the rows (`compacted-<digest of the
partition's row ids>-<k>of<n>.parquet`), so a re-run after a crash computes the same names, overwrites instead of
adding, and never deletes a file that is one of its own outputs. Only files that were read are deleted, so a file a
normalizer writes into the partition meanwhile stays and is merged by the next run.

A partition is left alone when it holds one file, or exactly one complete set of compacted outputs (all k of n with
one digest): that is the state a finished compaction leaves, so daily runs only touch partitions that got new files
(late updates of old alerts land in their creation day's partition) or whose last compaction was interrupted.

Every closed partition gets its indicator index (shared/ops/index_build.py): a compacted one from the files just
written, after the inputs are deleted; one left alone, when its index is missing or was built from other files
(its name tells, from the listing), from the lake.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from normalizers import log_schema
from normalizers.logs import TABLES as LOG_TABLES
from normalizers.names import TABLE as ALERTS_TABLE
from normalizers.schema import PARQUET_WRITE_OPTIONS
from shared.ops.compact_merge import (
    DEFAULT_MEMORY_BYTES,
    Runs,
    group_rows,
    sorted_runs,
    spool,
    work_folder,
    write_files,
)
from shared.core import health
from shared.core.errors import ConfigError, GraphlakeError, one_line
from shared.core.layout import PartitionFile, check_table_name, parse_partition_file, partition_path
from shared.core.storage import Store
from shared.ops.index_build import index_from_lake, is_current, listed_indexes, write_index

log = logging.getLogger("graphlake.compact")

MB = 1024 * 1024
DEFAULT_TARGET_BYTES = 128 * MB
# Row groups: DuckDB scans a file's row groups in parallel (one thread each) and keeps min/max per group, so a
# group is the unit of both parallelism and skipping. A group holds at most ROW_GROUP_ROWS rows, the size DuckDB
# itself writes (60 vectors of 2,048), and at most ROW_GROUP_BYTES of uncompressed values, because alert rows are
# wide (kilobytes each, most of it evidence JSON): 122,880 of them would be a group of hundreds of megabytes that
# every reader of `SELECT *` must hold at once. With the byte bound (bench/bench_lake_reads.py reports the rows a
# group gets) a day of a large tenant still splits into several groups for the cores to share, while the per-group
# overhead (footer entries, one range request per column chunk on blob storage) stays small.
ROW_GROUP_ROWS = 122_880
ROW_GROUP_BYTES = 64 * MB
COMPACTED_PREFIX = "compacted-"

_COMPACTED_RE = re.compile(rf"^{COMPACTED_PREFIX}(?P<digest>[0-9a-f]{{20}})-(?P<k>\d+)of(?P<n>\d+)\.parquet$")
# Parquet options per table; tables of other producers get zstd with statistics on every column.
_TABLE_OPTIONS = {ALERTS_TABLE: PARQUET_WRITE_OPTIONS,
                  **dict.fromkeys(LOG_TABLES, log_schema.PARQUET_WRITE_OPTIONS)}
_DEFAULT_OPTIONS = {"compression": "zstd"}


class CompactFailed(GraphlakeError):
    """Some partitions could not be compacted (their files are left as they were); the message lists them."""


@dataclass(frozen=True)
class Partition:
    table: str
    day: dt.date
    files: tuple[str, ...]  # full names, sorted

    @property
    def path(self) -> str:
        return partition_path(self.table, self.day)

    def settled(self) -> bool:
        """True when there is nothing to merge: one file, or one complete set of compacted outputs."""
        if len(self.files) <= 1:
            return True
        found = [_COMPACTED_RE.match(name.rsplit("/", 1)[1]) for name in self.files]
        if not all(found):
            return False
        digests = {(m["digest"], int(m["n"])) for m in found if m}
        if len(digests) != 1:
            return False
        (_, n), = digests
        return sorted(int(m["k"]) for m in found if m) == list(range(1, n + 1))


@dataclass
class Compaction:
    """One partition merged into files in a local work folder: what was read, and the files that replace it."""

    partition: Partition
    inputs: list[str]  # the names read; only these are ever deleted
    outputs: dict[str, Path]  # name in the lake -> the file in the work folder (gone once close() ran)
    rows_in: int
    rows_out: int
    bytes_in: int
    bytes_out: int
    work: tempfile.TemporaryDirectory | None = None

    def close(self) -> None:
        """Remove the work folder (it also goes when the object is collected)."""
        if self.work is not None:
            self.work.cleanup()
            self.work = None


@dataclass
class CompactSummary:
    lake: str
    closed_before: str  # partitions of days before this one (UTC) are closed and may be compacted
    target_bytes: int
    dry_run: bool = False
    partitions_examined: int = 0
    partitions_open: int = 0  # too recent: today, or within the grace days
    partitions_compacted: int = 0
    partitions_failed: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0
    duplicates_removed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    indexes_written: int = 0  # of partitions compacted in this run
    indexes_repaired: int = 0  # of partitions left alone whose index was missing or built from other files
    stopped_early: bool = False  # the time budget ran out; the next run continues
    tables: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    def raise_for_errors(self) -> None:
        if self.errors:
            raise CompactFailed(f"{len(self.errors)} partitions not compacted: " + "; ".join(self.errors[:5]))


HEALTH_COMPONENT = "compact"


def compact_and_record(lake: Store, state: Store, **options: Any) -> CompactSummary:
    """The compact_lake timer's run: `compact(lake, **options)`, then its health record (`health/compact/lake.json`,
    judged by `graphlake status`): what the run did to the lake and its indexes, so an operator learns of a
    partition that cannot be merged and of indexes compaction found missing or stale (built from other files: both
    told by the listing) and wrote again, without running a command. A run that raises (storage refusing a write or
    a delete) is recorded as failed, counting the failures in a row, and raises: the last good run's record must
    not speak for it."""
    try:
        summary = compact(lake, **options)
    except Exception as exc:
        failures = int(health.previous(state, HEALTH_COMPONENT, "lake").get("consecutive_failures") or 0) + 1
        try:
            health.record(state, HEALTH_COMPONENT, "lake", {"result": "failed", "consecutive_failures": failures,
                                                            "error": one_line(exc, with_type=True)})
        except Exception:  # noqa: BLE001 - the state store down too: the run's own error is the one to raise
            log.warning("compact: health record not written", exc_info=True)
        raise
    record_health(state, summary)
    return summary


def record_health(state: Store, summary: CompactSummary) -> None:
    """The health record of a run that ended (see compact_and_record)."""
    health.record(state, HEALTH_COMPONENT, "lake", {
        "result": "failed" if summary.errors else "ok", "consecutive_failures": 0,
        "partitions_compacted": summary.partitions_compacted,
        "partitions_failed": summary.partitions_failed, "indexes_written": summary.indexes_written,
        "indexes_repaired": summary.indexes_repaired, "stopped_early": summary.stopped_early,
        "seconds": summary.seconds, "errors": summary.errors[:5]})


def compact(store: Store, *, tables: Sequence[str] | None = None, grace_days: int = 1,
            target_bytes: int = DEFAULT_TARGET_BYTES, now: dt.datetime | None = None,
            max_seconds: float | None = None, dry_run: bool = False,
            memory_bytes: int = DEFAULT_MEMORY_BYTES, index: bool = True) -> CompactSummary:
    """Compact every closed partition of the lake (or of the given tables) that has files to merge.

    A partition is closed when its UTC day is before today minus grace_days. With dry_run, partitions are read
    and merged in a local work folder and counted, but nothing is written or deleted. memory_bytes bounds
    the memory a partition's merge uses (see shared/ops/compact_merge.py). With max_seconds, no new partition is
    started after that many seconds (the next run continues where this one stopped). With index (the default),
    every closed partition is left with its indicator index.
    """
    if grace_days < 0:
        raise ConfigError(f"grace days must be 0 or more, not {grace_days}")
    if target_bytes <= 0:
        raise ConfigError(f"target size must be positive, not {target_bytes} bytes")
    for name in tables or ():
        try:
            check_table_name(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if next(iter(store.list(f"{name}/")), None) is None:
            raise ConfigError(f"table {name} has no files in the lake {store.url}")
    started = time.monotonic()
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    closed_before = today - dt.timedelta(days=grace_days)
    summary = CompactSummary(lake=store.url, closed_before=closed_before.isoformat(), target_bytes=target_bytes,
                             dry_run=dry_run)
    index = index and not dry_run
    indexes = listed_indexes(store, tables) if index else {}
    for partition in partitions(store, tables):
        if partition.table not in summary.tables:
            summary.tables.append(partition.table)
        summary.partitions_examined += 1
        if partition.day >= closed_before:
            summary.partitions_open += 1
            continue
        settled = partition.settled()
        if settled and (not index or is_current(indexes.get((partition.table, partition.day), []), partition.files)):
            continue
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            summary.stopped_early = True
            break
        try:
            if settled:
                index_from_lake(store, partition.table, partition.day, partition.files)
                summary.indexes_repaired += 1
                continue
            done = compact_partition(store, partition, target_bytes=target_bytes, memory_bytes=memory_bytes,
                                     dry_run=dry_run, index=index)
        except (pa.ArrowException, ValueError) as exc:
            # The data's fault (files that cannot be merged, a file that is not parquet): leave the partition as it
            # is and go on. Storage errors are not caught: they are transient, and the next run retries.
            summary.partitions_failed += 1
            summary.errors.append(f"{partition.path}: {one_line(exc)}")
            log.error("graphlake.compact partition %s not compacted: %s", partition.path, one_line(exc))
            continue
        if done is None:
            continue
        summary.partitions_compacted += 1
        summary.indexes_written += index
        summary.files_in += len(done.inputs)
        summary.files_out += len(done.outputs)
        summary.rows_in += done.rows_in
        summary.rows_out += done.rows_out
        summary.duplicates_removed += done.rows_in - done.rows_out
        summary.bytes_in += done.bytes_in
        summary.bytes_out += done.bytes_out
        log.info("graphlake.compact partition %s: %d files -> %d, %d rows -> %d", partition.path, len(done.inputs),
                 len(done.outputs), done.rows_in, done.rows_out)
    summary.seconds = round(time.monotonic() - started, 3)
    log.info("graphlake.compact.summary %s", summary.to_json())
    return summary


def partitions(store: Store, tables: Sequence[str] | None = None) -> Iterator[Partition]:
    """Every day partition of the lake (or of the given tables) with its parquet files, in name order.

    Streams the listing: the store lists names sorted, so a partition's files are adjacent and only one
    partition's names are held at a time. A Delta table (one with a `_delta_log/`, which sorts before its
    partitions) is skipped: its log names the files, and rewriting them behind its back would break it.
    """
    listings: Iterable[str] = itertools.chain.from_iterable(store.list(f"{t}/") for t in tables) if tables else \
        store.list("")
    delta_tables: set[str] = set()

    def ours(names: Iterable[str]) -> Iterator[tuple[str, PartitionFile]]:
        for name in names:
            table, _, rest = name.partition("/")
            if rest.startswith("_delta_log/"):
                delta_tables.add(table)
            elif table not in delta_tables and (found := parse_partition_file(name)):
                yield name, found

    for (table, day), group in itertools.groupby(ours(listings), key=lambda named: (named[1].table, named[1].day)):
        yield Partition(table, day, tuple(name for name, _ in group))


def compact_partition(store: Store, partition: Partition, *, target_bytes: int = DEFAULT_TARGET_BYTES,
                      memory_bytes: int = DEFAULT_MEMORY_BYTES, dry_run: bool = False,
                      index: bool = True) -> Compaction | None:
    """Merge, write every output, then delete the inputs, then write the index of the outputs; None if fewer than
    two files could be read."""
    done = merge_partition(store, partition, target_bytes=target_bytes, memory_bytes=memory_bytes)
    if done is None:
        return None
    try:
        if not dry_run:
            write_outputs(store, done)
            delete_inputs(store, done)
            if index:
                # From the outputs, still in the work folder. A file landed meanwhile is not among them: the
                # index's name then differs from the listing's digest, and the next run indexes the day again.
                write_index(store, partition.table, partition.day,
                            [(name.rsplit("/", 1)[1], path, path.stat().st_size)
                             for name, path in sorted(done.outputs.items())])
    finally:
        done.close()
    return done


def merge_partition(store: Store, partition: Partition, *, target_bytes: int = DEFAULT_TARGET_BYTES,
                    memory_bytes: int = DEFAULT_MEMORY_BYTES) -> Compaction | None:
    """Build the partition's compacted files in a local work folder, in bounded memory. Writes nothing to the store.
    The caller closes the result (or lets it be collected) to remove the folder."""
    work = work_folder()
    try:
        folder = Path(work.name)
        spooled = spool(store, partition.files, folder)
        if len(spooled.inputs) < 2:
            work.cleanup()
            return None
        runs = sorted_runs(spooled.paths, folder, memory_bytes)
        outputs = _write_locally(runs, partition, folder, target_bytes)
    except BaseException:
        work.cleanup()
        raise
    return Compaction(partition, spooled.inputs, outputs, rows_in=runs.rows_in, rows_out=runs.rows_out,
                      bytes_in=spooled.bytes_in, bytes_out=sum(path.stat().st_size for path in outputs.values()),
                      work=work)


def write_outputs(store: Store, done: Compaction) -> None:
    """Write every output, one file in memory at a time. An output that already is one of the inputs (a re-run
    after a crash) holds the same rows by its name, and is not written again."""
    read = set(done.inputs)
    for name, path in done.outputs.items():
        if name not in read:
            store.write(name, path.read_bytes())


def delete_inputs(store: Store, done: Compaction) -> None:
    """Delete the files that were read, except the outputs. Only after every output is written."""
    for name in done.inputs:
        if name not in done.outputs:
            store.delete(name)


def _write_locally(runs: Runs, partition: Partition, folder: Path, target_bytes: int) -> dict[str, Path]:
    """The partition as parquet files of at most target_bytes each (one file if it fits), named from its rows.

    The partition is first written whole; only if that is over the target is it cut, into the fewest equal row
    ranges that each fit. The cut depends on the rows alone, never on how the input was split into files, so a re-run
    after a crash arrives at the same files and names.
    """
    options = _TABLE_OPTIONS.get(partition.table, _DEFAULT_OPTIONS)
    group = group_rows(runs.value_bytes, runs.rows_out, ROW_GROUP_ROWS, ROW_GROUP_BYTES)
    paths = write_files(runs, folder, [runs.rows_out], group, options, "whole")
    files = math.ceil(paths[0].stat().st_size / target_bytes)
    attempt = 0
    while files > 1:
        for path in paths:
            path.unlink()
        attempt += 1
        per_file = math.ceil(runs.rows_out / files)
        counts = [min(per_file, runs.rows_out - start) for start in range(0, runs.rows_out, per_file)]
        paths = write_files(runs, folder, counts, group, options, f"cut{attempt}")
        # Each file carries its own footer and dictionaries, so equal cuts can come out a little over the target.
        largest = max(path.stat().st_size for path in paths)
        if largest <= target_bytes or per_file == 1:
            break
        files = max(files + 1, math.ceil(files * largest / target_bytes))
    for path in runs.paths:
        path.unlink()
    return {f"{partition.path}/{COMPACTED_PREFIX}{runs.digest}-{k}of{len(paths)}.parquet": path
            for k, path in enumerate(paths, 1)}

