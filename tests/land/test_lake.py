"""The lake writer and the quarantine writer, on both backends (store_url fixture)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from shared.land.lake_writer import read_table, write_table
from shared.land.quarantine import quarantine
from shared.core.storage import LocalStore, open_store

UTC = dt.UTC
SCHEMA = pa.schema([
    ("p_row_id", pa.string()),
    ("p_event_time", pa.timestamp("us", tz="UTC")),
    ("severity", pa.string()),
    ("score", pa.int32()),
    ("tags", pa.list_(pa.string())),
])
TABLE = "security_alerts"
PART_RE = re.compile(rf"^{TABLE}/year=\d{{4}}/month=\d{{2}}/day=\d{{2}}/part-[0-9a-f]{{20}}\.parquet$")


def rows_table(times: list[dt.datetime], *, ids: list[str] | None = None, severity: str = "high") -> pa.Table:
    ids = ids or [f"row-{i:04d}" for i in range(len(times))]
    return pa.table({
        "p_row_id": ids,
        "p_event_time": times,
        "severity": [severity] * len(times),
        "score": list(range(len(times))),
        "tags": [["a", str(i)] for i in range(len(times))],
    }, schema=SCHEMA)


# Three UTC days, with rows right at the day boundaries, deliberately out of order.
TIMES = [
    dt.datetime(2026, 3, 5, 0, 0, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 4, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2026, 3, 4, 8, 0, tzinfo=UTC),
    dt.datetime(2026, 12, 31, 12, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 5, 17, 30, tzinfo=UTC),
    dt.datetime(2026, 3, 4, 0, 0, tzinfo=UTC),
]


def file_table(store, name: str) -> pa.Table:  # type: ignore[no-untyped-def]
    return pq.read_table(io.BytesIO(store.read(name).data))


def test_rows_split_into_zero_padded_utc_day_partitions(store_url: str) -> None:
    store = open_store(store_url)
    names = write_table(store, rows_table(TIMES), table_name=TABLE)
    assert [n.rsplit("/", 1)[0] for n in names] == [
        f"{TABLE}/year=2026/month=03/day=04",
        f"{TABLE}/year=2026/month=03/day=05",
        f"{TABLE}/year=2026/month=12/day=31",
    ]
    assert all(PART_RE.match(n) for n in names)
    assert list(store.list(f"{TABLE}/")) == sorted(names)
    for name in names:
        t = file_table(store, name)
        day = dt.date(*(int(v) for v in re.findall(r"=(\d+)", name)))
        assert {ts.date() for ts in t["p_event_time"].to_pylist()} == {day}
    assert [file_table(store, n).num_rows for n in names] == [3, 2, 1]


def test_partition_day_is_the_utc_day_even_for_zoned_timestamps(store_url: str) -> None:
    # 03:00 UTC on 2 Jan is still 1 Jan in New York: the partition must follow UTC.
    zoned = pa.schema([("p_row_id", pa.string()), ("p_event_time", pa.timestamp("ns", tz="America/New_York"))])
    table = pa.table({"p_row_id": ["r1"], "p_event_time": [dt.datetime(2026, 1, 2, 3, 0, tzinfo=UTC)]}, schema=zoned)
    (name,) = write_table(open_store(store_url), table, table_name=TABLE)
    assert "/year=2026/month=01/day=02/" in name


def test_file_is_zstd_sorted_by_event_time_and_keeps_the_schema(store_url: str) -> None:
    store = open_store(store_url)
    (name,) = write_table(store, rows_table([t for t in TIMES if t.day == 4]), table_name=TABLE)
    meta = pq.ParquetFile(io.BytesIO(store.read(name).data)).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}
    t = file_table(store, name)
    assert t.schema.equals(SCHEMA)
    times = t["p_event_time"].to_pylist()
    assert times == sorted(times) and len(times) == 3


def test_round_trip_returns_every_row_without_partition_columns(store_url: str) -> None:
    store = open_store(store_url)
    table = rows_table(TIMES)
    write_table(store, table, table_name=TABLE)
    back = read_table(store, TABLE)
    assert back.schema.equals(SCHEMA)  # no year/month/day columns added
    assert back.sort_by("p_row_id").equals(table.sort_by("p_row_id"))


def test_same_rows_same_file_so_a_retry_overwrites_instead_of_duplicating(store_url: str) -> None:
    store = open_store(store_url)
    first = write_table(store, rows_table(TIMES), table_name=TABLE)
    # The retry arrives in another order and with updated content (e.g. a later alert version).
    shuffled = rows_table(TIMES[::-1], ids=[f"row-{i:04d}" for i in range(len(TIMES))][::-1], severity="low")
    retried = write_table(store, shuffled, table_name=TABLE)
    assert retried == first
    assert list(store.list(f"{TABLE}/")) == sorted(first)
    back = read_table(store, TABLE)
    assert back.num_rows == len(TIMES)
    assert set(back["severity"].to_pylist()) == {"low"}


def test_the_file_name_depends_on_the_row_ids_only(store_url: str) -> None:
    # A later version of an alert may carry another event time; as long as it stays in the day, the rows
    # (by id) are the same and so is the file.
    store = open_store(store_url)
    day = [dt.datetime(2026, 3, 4, h, tzinfo=UTC) for h in (1, 2, 3)]
    (first,) = write_table(store, rows_table(day, ids=["c", "a", "b"]), table_name=TABLE)
    (second,) = write_table(store, rows_table(day, ids=["b", "c", "a"]), table_name=TABLE)
    assert first == second
    assert read_table(store, TABLE)["p_row_id"].to_pylist() == ["b", "c", "a"]


def test_different_rows_get_a_different_file(store_url: str) -> None:
    store = open_store(store_url)
    (a,) = write_table(store, rows_table(TIMES[:1], ids=["alert-1"]), table_name=TABLE)
    (b,) = write_table(store, rows_table(TIMES[:1], ids=["alert-2"]), table_name=TABLE)
    (c,) = write_table(store, rows_table(TIMES[:1] * 2, ids=["alert-1", "alert-2"]), table_name=TABLE)
    assert len({a, b, c}) == 3
    assert read_table(store, TABLE).num_rows == 4


def test_bad_input_is_refused_before_anything_is_written(store_url: str) -> None:
    store = open_store(store_url)
    assert write_table(store, rows_table([]), table_name=TABLE) == []
    with_null = rows_table(TIMES[:2]).set_column(1, "p_event_time", pa.array([TIMES[0], None], SCHEMA.field(1).type))
    with pytest.raises(ValueError, match="p_event_time has 1 null"):
        write_table(store, with_null, table_name=TABLE)
    with pytest.raises(ValueError, match="no p_row_id column"):
        write_table(store, rows_table(TIMES).drop_columns(["p_row_id"]), table_name=TABLE)
    with pytest.raises(ValueError, match="must be a timestamp"):
        write_table(store, rows_table(TIMES).set_column(1, "p_event_time", pa.array(["x"] * 6)), table_name=TABLE)
    with pytest.raises(ValueError, match="invalid table name"):
        write_table(store, rows_table(TIMES), table_name="../escape")
    assert list(store.list()) == []
    assert read_table(store, TABLE).num_rows == 0


def test_duckdb_reads_the_local_lake_with_hive_partitions(tmp_path: Path) -> None:
    # The layout is for query engines: hive keys become columns and lock files are not mistaken for data.
    store = LocalStore(tmp_path)
    write_table(store, rows_table(TIMES), table_name=TABLE)
    pattern = str(tmp_path / TABLE / "**" / "*.parquet")
    rows = duckdb.sql(f"SELECT year::INT, month::INT, day::INT, count(*) "
                      f"FROM read_parquet('{pattern}', hive_partitioning = true) GROUP BY ALL ORDER BY ALL").fetchall()
    assert rows == [(2026, 3, 4, 3), (2026, 3, 5, 2), (2026, 12, 31, 1)]


def test_thousands_of_rows_spread_over_days(tmp_path: Path) -> None:
    # The hot-path size: every row lands exactly once, in the file of its day.
    store = LocalStore(tmp_path)
    start = dt.datetime(2026, 5, 1, tzinfo=UTC)
    times = [start + dt.timedelta(seconds=37 * i) for i in range(5000)]  # about 2.1 days
    names = write_table(store, rows_table(times), table_name=TABLE)
    assert [n.split("/")[3] for n in names] == ["day=01", "day=02", "day=03"]
    back = read_table(store, TABLE)
    assert back.num_rows == 5000
    assert pc.count_distinct(back["p_row_id"]).as_py() == 5000


# --- quarantine -----------------------------------------------------------------------------------

METADATA = {
    "partition": "3",
    "sequence_number": 1234,
    "offset": "98765",
    "enqueued_time": "2026-03-04T23:30:00+00:00",
    "properties": {b"graphlake_source": b"tenant-a", "retry": 2, "when": dt.datetime(2026, 3, 4, tzinfo=UTC)},
}


QUARANTINED_AT = dt.datetime(2026, 3, 5, 23, 59, 59, tzinfo=UTC)


def test_quarantine_document_holds_everything_needed_to_replay(store_url: str) -> None:
    store = open_store(store_url)
    raw = b'{"id": "alert-1", "severity": ' + "\u00e9".encode() + b"}"
    name = quarantine(store, raw=raw, error="JSONDecodeError: unexpected end\n  at line 1", metadata=METADATA,
                      now=QUARANTINED_AT)
    assert re.fullmatch(r"quarantine/2026/03/04/[0-9a-f]{24}\.json", name)
    doc = orjson.loads(store.read(name).data)
    assert base64.b64decode(doc["raw_base64"]) == raw
    assert doc["raw_utf8_preview"] == raw.decode()
    assert doc["error"] == "JSONDecodeError: unexpected end at line 1"
    assert doc["metadata"] == {
        "partition": "3", "sequence_number": 1234, "offset": "98765", "enqueued_time": "2026-03-04T23:30:00+00:00",
        "properties": {"graphlake_source": "tenant-a", "retry": 2, "when": "2026-03-04T00:00:00+00:00"},
    }
    assert dt.datetime.fromisoformat(doc["quarantined_at"]) == QUARANTINED_AT


def test_quarantine_of_the_same_event_twice_is_one_document(store_url: str) -> None:
    store = open_store(store_url)
    first = quarantine(store, raw=b"not json", error="bad", metadata=METADATA)
    again = quarantine(store, raw=b"not json", error="bad", metadata=METADATA)
    other = quarantine(store, raw=b"other", error="bad", metadata=METADATA)
    assert first == again != other
    assert list(store.list("quarantine/")) == sorted([first, other])


def test_quarantine_of_binary_without_enqueued_time(store_url: str) -> None:
    store = open_store(store_url)
    # Without an enqueued time the day is the quarantine's own (here a second before midnight, UTC).
    name = quarantine(store, raw=b"\xff\xfe\x00", error="x" * 5000, metadata={}, now=QUARANTINED_AT)
    assert name.startswith("quarantine/2026/03/05/")
    doc = orjson.loads(store.read(name).data)
    assert doc["raw_utf8_preview"] is None
    assert base64.b64decode(doc["raw_base64"]) == b"\xff\xfe\x00"
    assert len(doc["error"]) <= 2000
