"""The parquet lake: hive-style day partitions of zstd parquet, written idempotently.

Layout: `<table>/year=YYYY/month=MM/day=DD/part-<hash>.parquet`, keyed by the UTC day of `p_event_time`,
zero-padded so DuckDB, Spark and Synapse serverless all read the same tree as partition columns.

Why days, not hours (Panther and Matano use hours): Graph produces hundreds to thousands of alerts a day per
tenant, so hourly partitions would hold KB-sized files, far below the 100 MB-1 GB files query engines want,
and every small file costs a request to list and open. A day keeps files and partition counts sane without
a compaction job.

Why the file name is a hash of the row ids: Event Hubs delivers at least once and the Functions retry
re-runs whole batches, so the same rows arrive again. The same rows give the same name, and the retry
overwrites the file instead of adding a duplicate beside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.core.lake_files import read_tables
from shared.core.layout import check_table_name, partition_path
from shared.core.storage import Store

_EPOCH = dt.date(1970, 1, 1)
_DEFAULT_PARQUET_OPTIONS = {"compression": "zstd"}


def write_table(store: Store, table: pa.Table, *, table_name: str, partition_column: str = "p_event_time",
                row_id_column: str = "p_row_id", parquet_options: Mapping[str, Any] | None = None) -> list[str]:
    """Write table as one parquet file per UTC day of partition_column; return the names written.

    parquet_options are pyarrow.parquet.write_table's keyword arguments (default: zstd); the alerts table
    passes normalizers.schema.PARQUET_WRITE_OPTIONS.
    """
    check_table_name(table_name)
    check_lake_columns(table, partition_column, row_id_column)
    if table.num_rows == 0:
        return []

    # One sort puts each day's rows next to each other, in time order, so partitions are zero-copy slices.
    # Row id breaks ties, so the same rows always give byte-identical files. A table already in that order
    # (normalize_events builds it so) is not copied.
    order = pc.sort_indices(table, sort_keys=[(partition_column, "ascending"), (row_id_column, "ascending")])
    if not pc.all(pc.equal(order, pa.array(range(len(order)), type=order.type))).as_py():
        table = table.take(order)
    ts = table[partition_column]
    # Dropping the time zone first keeps the UTC instant; a zoned timestamp cast straight to date32 would take
    # the local date of its zone.
    days = ts.cast(pa.timestamp(ts.type.unit)).cast(pa.date32()).cast(pa.int32())
    counts = pc.value_counts(days)

    names: list[str] = []
    offset = 0
    for day_number, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
        part = table.slice(offset, count)
        offset += count
        day = _EPOCH + dt.timedelta(days=day_number)
        name = f"{partition_path(table_name, day)}/part-{rows_digest(part[row_id_column])}.parquet"
        buf = io.BytesIO()
        pq.write_table(part, buf, **(parquet_options or _DEFAULT_PARQUET_OPTIONS))
        store.write(name, buf.getvalue())
        names.append(name)
    return names


def read_table(store: Store, table_name: str) -> pa.Table:
    """Every file of table_name as one table (for tests and the CLI; queries should use DuckDB on the lake)."""
    check_table_name(table_name)
    tables = list(read_tables(store, f"{table_name}/"))
    if not tables:
        return pa.table({})
    # "default" promotion tolerates files written before a column was added to the schema.
    return pa.concat_tables(tables, promote_options="default")


def check_lake_columns(table: pa.Table, partition_column: str = "p_event_time", row_id_column: str = "p_row_id") -> None:
    """ValueError unless every row has a timestamp to partition by and a string row id."""
    _check_column(table, partition_column, pa.types.is_timestamp, "a timestamp")
    _check_column(table, row_id_column, lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "a string")


def _check_column(table: pa.Table, column: str, is_type: Callable[[pa.DataType], bool], expected: str) -> None:
    if column not in table.column_names:
        raise ValueError(f"table has no {column} column")
    if not is_type(table.schema.field(column).type):
        raise ValueError(f"{column} must be {expected}, not {table.schema.field(column).type}")
    if table[column].null_count:
        raise ValueError(f"{column} has {table[column].null_count} null values; every row needs one")


def rows_digest(row_ids: pa.ChunkedArray) -> str:
    """First 20 hex of sha256 over the sorted row ids: the same rows name the same file."""
    # JSON of the sorted list is an unambiguous encoding whatever characters the ids hold.
    return hashlib.sha256(orjson.dumps(sorted(row_ids.to_pylist()))).hexdigest()[:20]
