"""Reading the lake's parquet files through `Store`, for the write and ops side (tests, the audit, compaction).
Queries read the lake through DuckDB instead (shared/read/lake_reader.py).

Compaction replaces a partition's files while others read it: between a listing and a read, a listed file may be
gone, its rows already in a new file the listing did not hold. A reader of a whole folder must then pick up the new
files, or it silently reads a partition short; a reader of named files (compaction's own inputs) passes over the
gone ones, whose rows another compaction finished.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from shared.core.errors import GraphlakeError
from shared.core.layout import parse_partition_file
from shared.core.storage import Store


class LakeFile(NamedTuple):
    name: str
    data: bytes


def partition_files(store: Store, prefix: str) -> list[str]:
    """The names under `prefix` that are partition files of the lake's layout."""
    return [name for name in store.list(prefix) if parse_partition_file(name) is not None]


def read_named(store: Store, names: Iterable[str]) -> Iterator[LakeFile]:
    """Each of `names` that still exists, in order; one gone since it was listed is passed over."""
    for name in names:
        found = store.read(name)
        if found is not None:
            yield LakeFile(name, found.data)


def read_folder(store: Store, prefix: str) -> Iterator[LakeFile]:
    """Every partition file under `prefix`. When files vanish between the listing and their read, the folder is
    listed again for the files that replaced them; GraphlakeError when files vanish on that second pass too."""
    names = partition_files(store, prefix)
    for attempt in range(2):
        read = set()
        for found in read_named(store, names):
            read.add(found.name)
            yield found
        vanished = [name for name in names if name not in read]
        if not vanished:
            return
        if attempt:
            raise GraphlakeError(f"lake files vanished while read twice under {prefix}: {vanished[:3]}")
        listed = set(names)
        names = [name for name in partition_files(store, prefix) if name not in listed]


def read_tables(store: Store, prefix: str, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
    """Every partition file under `prefix` (see read_folder) as a table of `columns` (default: all)."""
    for found in read_folder(store, prefix):
        # The file alone, not as a dataset, so year/month/day are not added as columns. Without Arrow's reader
        # threads: a command that read with them aborted at exit now and then ("terminate called without an active
        # exception", exit 134) as those threads outlived the interpreter, and one small file gains nothing from them.
        yield pq.read_table(io.BytesIO(found.data), columns=columns, use_threads=False)
