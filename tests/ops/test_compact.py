"""Compaction of the lake (shared/ops/compact.py, `graphlake compact`), on both backends (local folder and Azurite).

The invariant throughout: reading the lake and keeping one row per p_row_id (the first parsed, as the views do)
gives exactly the rows the lake held before compaction, at every moment: after a finished run, after a run stopped
between writing its files and deleting the old ones, and after a `graphlake compact` process killed at random.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from normalizers.names import TABLE
from shared.cli import main
from shared.ops.compact import (
    MB,
    ROW_GROUP_BYTES,
    ROW_GROUP_ROWS,
    Partition,
    compact,
    delete_inputs,
    merge_partition,
    partitions,
    write_outputs,
)
from shared.ops.compact_merge import group_rows, value_bytes
from shared.land.lake_writer import read_table, write_table
from shared.land.normalize import InboundEvent, normalize_events
from shared.core.storage import LocalStore, Store, open_store
from simulator.tenant import Tenant
from tests.conftest import REPO, STORE_KINDS

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # closed (grace 1 day): 8 March and before
OTHER = "okta_events"  # a table another producer writes in the same layout
OTHER_SCHEMA = pa.schema([
    ("p_row_id", pa.string()),
    ("p_event_time", pa.timestamp("us", tz="UTC")),
    ("actor", pa.string()),
    ("outcome", pa.string()),
    ("geo", pa.string()),
])


# --- building lakes ------------------------------------------------------------------------------------------------

def alert_lake(store: Store, state: Store, *, alerts: int = 240, batch: int = 20, seed: int = 5) -> Tenant:
    """Real normalized alerts over 4.5 days before NOW, one file per batch and day, plus a redelivery of some of
    them in another grouping and parsed later (the duplicates compaction removes)."""
    tenant = Tenant(seed=seed, alerts=alerts, days=4.5, now=NOW)
    _, bodies = tenant.query_json(top=alerts, include_unknown_enum_members=True)
    for number, start in enumerate(range(0, len(bodies), batch)):
        normalize_events([InboundEvent(b) for b in bodies[start:start + batch]], lake=store, state=state,
                         parse_time=NOW - dt.timedelta(hours=2) + dt.timedelta(seconds=number))
    normalize_events([InboundEvent(b) for b in bodies[3:120:4]], lake=store, state=state,
                     parse_time=NOW - dt.timedelta(minutes=5))
    return tenant


def other_rows(day: dt.date, ids: range, *, prefix: str = "evt", payload: int = 40) -> pa.Table:
    rng = random.Random(f"{day}{ids.start}{prefix}")
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pa.table({
        "p_row_id": [f"{prefix}-{day:%m%d}-{i:06d}" for i in ids],
        "p_event_time": [start + dt.timedelta(seconds=rng.randrange(86_400)) for _ in ids],
        "actor": [f"user{rng.randrange(50)}@contoso.com" for _ in ids],
        "outcome": [rng.choice(["SUCCESS", "FAILURE"]) + "-" + rng.randbytes(payload // 2).hex() for _ in ids],
        "geo": [rng.choice(["NL", "US", None]) for _ in ids],
    }, schema=OTHER_SCHEMA)


def other_lake(store: Store, days: list[dt.date], *, files: int, rows: int, payload: int = 40) -> None:
    for day in days:
        for f in range(files):
            write_table(store, other_rows(day, range(f * rows, (f + 1) * rows), payload=payload), table_name=OTHER)


def closed_days(count: int) -> list[dt.date]:
    return [NOW.date() - dt.timedelta(days=2 + i) for i in range(count)]


# --- reading lakes -------------------------------------------------------------------------------------------------

def snapshot(store: Store, prefix: str = "") -> dict[str, bytes]:
    return {name: store.read(name).data for name in store.list(prefix)}


def file_table(store: Store, name: str) -> pa.Table:
    return pq.read_table(io.BytesIO(store.read(name).data))


def deduplicated(store: Store, table: str) -> dict[str, dict]:
    """What a reader sees: one row per p_row_id, the first parsed, ties to the first file in name order."""
    best: dict[str, dict] = {}
    for row in read_table(store, table).to_pylist():
        current = best.get(row["p_row_id"])
        if current is None or (row.get("p_parse_time") or NOW) < (current.get("p_parse_time") or NOW):
            best[row["p_row_id"]] = row
    return best


def day_files(store: Store, table: str) -> dict[dt.date, list[str]]:
    return {p.day: [n.rsplit("/", 1)[1] for n in p.files] for p in partitions(store, [table])}


def assert_sorted(table: pa.Table) -> None:
    keys = list(zip(table["p_event_time"].to_pylist(), table["p_row_id"].to_pylist()))
    assert keys == sorted(keys)


# --- what a run does -----------------------------------------------------------------------------------------------

def test_closed_partitions_become_one_sorted_file_with_the_same_rows(store_url, tmp_path):
    store = open_store(store_url)
    alert_lake(store, LocalStore(tmp_path / "state"))
    before_rows = read_table(store, TABLE)
    expected = deduplicated(store, TABLE)
    before = day_files(store, TABLE)
    open_before = {n: d for n, d in snapshot(store).items() if "day=09/" in n or "day=10/" in n}
    assert min(before) < dt.date(2026, 3, 9) and all(len(f) > 1 for f in before.values())
    closed_rows_before = sum(file_table(store, n).num_rows for n in store.list(f"{TABLE}/")
                             if "day=09/" not in n and "day=10/" not in n)

    summary = compact(store, now=NOW)

    after = day_files(store, TABLE)
    for day, names in after.items():
        if day >= dt.date(2026, 3, 9):
            assert names == before[day], f"open partition {day} was touched"
        else:
            assert len(names) == 1 and names[0].startswith("compacted-") and names[0].endswith("-1of1.parquet")
    assert {n: d for n, d in snapshot(store).items() if "day=09/" in n or "day=10/" in n} == open_before
    # Exactly the same rows, each once: same p_row_id set, and every column equal to the copy a reader saw.
    after_rows = read_table(store, TABLE)
    closed_ids = [r["p_row_id"] for r in after_rows.to_pylist() if r["p_event_time"].date() < dt.date(2026, 3, 9)]
    assert Counter(closed_ids) == Counter(i for i, r in expected.items() if r["p_event_time"].date() < dt.date(2026, 3, 9))
    assert deduplicated(store, TABLE) == expected
    assert after_rows.schema.equals(before_rows.schema)
    closed = [d for d in before if d < dt.date(2026, 3, 9)]
    assert summary.partitions_examined == len(before) and summary.partitions_open == len(before) - len(closed)
    assert summary.partitions_compacted == len(closed) and summary.files_out == len(closed)
    assert summary.files_in == sum(len(before[d]) for d in closed)
    assert summary.duplicates_removed == summary.rows_in - summary.rows_out > 0
    assert summary.rows_in == closed_rows_before
    assert summary.rows_out == sum(1 for row in expected.values() if row["p_event_time"].date() < dt.date(2026, 3, 9))
    assert summary.bytes_out < summary.bytes_in and summary.tables == [TABLE] and not summary.errors
    for partition in partitions(store, [TABLE]):
        if partition.day < dt.date(2026, 3, 9):
            (name,) = partition.files
            assert_sorted(file_table(store, name))
            meta = pq.ParquetFile(io.BytesIO(store.read(name).data)).metadata
            assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}
            assert [c.column_index for c in meta.row_group(0).sorting_columns] == [
                meta.schema.names.index("p_event_time"), meta.schema.names.index("p_row_id")]


def test_a_second_run_changes_nothing(store_url, tmp_path):
    store = open_store(store_url)
    alert_lake(store, LocalStore(tmp_path / "state"), alerts=120)
    compact(store, now=NOW)
    first = snapshot(store)
    again = compact(store, now=NOW)
    assert snapshot(store) == first
    assert (again.partitions_compacted, again.files_in, again.files_out) == (0, 0, 0)
    assert again.partitions_examined == len(day_files(store, TABLE))


def test_updates_arriving_in_a_compacted_partition_are_merged_next_run(store_url, tmp_path):
    store, state = open_store(store_url), LocalStore(tmp_path / "state")
    tenant = alert_lake(store, state, alerts=120)
    compact(store, now=NOW)
    old_day = min(day_files(store, TABLE))
    (compacted,) = day_files(store, TABLE)[old_day]
    rows = file_table(store, f"{TABLE}/year=2026/month=03/day={old_day.day:02d}/{compacted}").to_pylist()
    # Weeks later Graph shows a new version of two of that day's alerts, and a redelivery of one old version.
    updated = []
    for row in rows[:2]:
        alert = tenant.alert(row["id"])
        alert.update(status="resolved", lastUpdateDateTime="2026-03-20T08:00:00.1234567Z")
        updated.append(orjson.dumps(alert))
    redelivered = tenant.alert_json(rows[2]["id"])
    normalize_events([InboundEvent(b) for b in [*updated, redelivered]], lake=store, state=state,
                     parse_time=NOW + dt.timedelta(days=10))
    assert len(day_files(store, TABLE)[old_day]) == 2
    expected = deduplicated(store, TABLE)

    later = compact(store, now=NOW)  # the days that were open still are, to keep the counts to the one partition
    assert later.partitions_compacted == 1 and later.files_in == 2 and later.files_out == 1
    assert later.duplicates_removed == 1
    (merged,) = day_files(store, TABLE)[old_day]
    assert merged != compacted
    table = file_table(store, f"{TABLE}/year=2026/month=03/day={old_day.day:02d}/{merged}")
    assert table.num_rows == len(rows) + 2
    assert_sorted(table)
    assert deduplicated(store, TABLE) == expected
    versions = Counter(r["id"] for r in table.to_pylist() if r["id"] in {x["id"] for x in rows[:2]})
    assert versions == {rows[0]["id"]: 2, rows[1]["id"]: 2}  # every version is a row: the old one and the update


def test_open_partitions_follow_the_grace_days(store_url):
    store = open_store(store_url)
    days = [NOW.date() - dt.timedelta(days=n) for n in range(4)]  # today, yesterday, 2 and 3 days ago
    other_lake(store, days, files=2, rows=5)
    open_days = {d for d, names in day_files(store, OTHER).items() if len(names) == 2}

    summary = compact(store, now=NOW, grace_days=2)
    assert summary.partitions_open == 3 and summary.partitions_compacted == 1
    assert {d for d, names in day_files(store, OTHER).items() if len(names) == 2} == open_days - {days[3]}
    summary = compact(store, now=NOW, grace_days=0)  # everything before today
    assert summary.partitions_open == 1 and summary.partitions_compacted == 2
    assert {d for d, names in day_files(store, OTHER).items() if len(names) == 2} == {days[0]}


def test_another_table_and_a_file_without_a_newer_column(store_url):
    store = open_store(store_url)
    day = closed_days(1)[0]
    old = other_rows(day, range(0, 30)).drop_columns(["geo"])  # written before the column was added
    write_table(store, old, table_name=OTHER)
    write_table(store, other_rows(day, range(30, 60)), table_name=OTHER)
    write_table(store, other_rows(day, range(60, 90)), table_name=OTHER)
    # The same day in the alerts table is another partition, and --table leaves it alone.
    write_table(store, other_rows(day, range(5)), table_name=TABLE)
    write_table(store, other_rows(day, range(5, 9)), table_name=TABLE)
    alerts_before = snapshot(store, f"{TABLE}/")

    summary = compact(store, tables=[OTHER], now=NOW)
    assert summary.partitions_compacted == 1 and summary.tables == [OTHER]
    assert snapshot(store, f"{TABLE}/") == alerts_before
    (name,) = [n for n in store.list(f"{OTHER}/")]
    table = file_table(store, name)
    assert table.schema.names == OTHER_SCHEMA.names  # the newest file's column order
    by_id = {r["p_row_id"]: r for r in table.to_pylist()}
    assert len(by_id) == table.num_rows == 90
    for row in old.to_pylist():
        assert by_id[row["p_row_id"]] == {**row, "geo": None}
    assert_sorted(table)


def test_duplicates_keep_the_first_parsed_copy_and_ties_the_first_file(store_url):
    store = open_store(store_url)
    day = closed_days(1)[0]
    base = other_rows(day, range(4)).append_column("p_parse_time", pa.array([NOW] * 4, pa.timestamp("us", "UTC")))
    later = base.set_column(3, "outcome", pa.array(["later"] * 4)).set_column(
        5, "p_parse_time", pa.array([NOW + dt.timedelta(hours=1)] * 4, pa.timestamp("us", "UTC")))
    tied = base.set_column(3, "outcome", pa.array(["tied"] * 4))
    store.write(f"{OTHER}/year={day.year}/month={day.month:02d}/day={day.day:02d}/b-later.parquet", _parquet(later))
    store.write(f"{OTHER}/year={day.year}/month={day.month:02d}/day={day.day:02d}/a-first.parquet", _parquet(base))
    store.write(f"{OTHER}/year={day.year}/month={day.month:02d}/day={day.day:02d}/c-tied.parquet", _parquet(tied))
    summary = compact(store, now=NOW)
    assert summary.duplicates_removed == 8
    (name,) = store.list(f"{OTHER}/")
    assert sorted(file_table(store, name).to_pylist(), key=lambda r: r["p_row_id"]) == \
        sorted(base.to_pylist(), key=lambda r: r["p_row_id"])


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_big_partitions_are_cut_into_files_of_the_target_size(store_url):
    store = open_store(store_url)
    day = closed_days(1)[0]
    other_lake(store, [day], files=12, rows=250, payload=200)
    whole = sum(len(d) for d in snapshot(store).values())
    target = 120_000

    summary = compact(store, now=NOW, target_bytes=target)
    names = sorted(store.list(f"{OTHER}/"))
    sizes = [len(store.read(n).data) for n in names]
    assert 3 <= len(names) <= math.ceil(whole / target) + 1, (whole, sizes)
    assert all(size <= target for size in sizes) and min(sizes) > target / 2, sizes
    assert [n.rsplit("-", 1)[1] for n in names] == [f"{k}of{len(names)}.parquet" for k in range(1, len(names) + 1)]
    assert len({n.rsplit("-", 1)[0] for n in names}) == 1  # one digest: one set
    tables = [file_table(store, n) for n in names]
    assert_sorted(pa.concat_tables(tables))  # sorted across the files too, not only within each
    assert sum(t.num_rows for t in tables) == 3000 == summary.rows_out
    assert summary.files_out == len(names) and summary.bytes_out == sum(sizes)
    # A complete set is what a finished run leaves: the next run leaves it alone.
    assert compact(store, now=NOW, target_bytes=target).partitions_compacted == 0


def test_row_groups_hold_at_most_the_scan_size(store_url):
    store = open_store(store_url)
    day = closed_days(1)[0]
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    for start in (0, 70_000):
        ids = range(start, start + 70_000)
        write_table(store, pa.table({"p_row_id": [f"r{i:06d}" for i in ids],
                                     "p_event_time": [midnight + dt.timedelta(milliseconds=i) for i in ids]}),
                    table_name=OTHER)
    compact(store, now=NOW)
    (name,) = store.list(f"{OTHER}/")
    meta = pq.ParquetFile(io.BytesIO(store.read(name).data)).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [ROW_GROUP_ROWS, 140_000 - ROW_GROUP_ROWS]


def _row_group_rows(table: pa.Table) -> int:
    """What compaction's merge gives these rows: their values measured as it measures its kept rows."""
    return group_rows(sum(value_bytes(column) for column in table.columns), table.num_rows, ROW_GROUP_ROWS,
                      ROW_GROUP_BYTES)


def test_wide_rows_get_smaller_row_groups():
    # 1.5 MB of values a row on average: 122,880 such rows would make a 180 GB group; the byte bound gives 42 rows.
    wide = pa.table({"p_row_id": ["a", "b"], "p_event_time": [NOW, NOW], "evidence": ["x" * MB] * 2,
                     "tags": [["y" * MB], None]})
    assert _row_group_rows(wide) == 42 == ROW_GROUP_BYTES // (1.5 * MB)
    assert _row_group_rows(wide.slice(0, 1)) == 31  # the values of the rows in the slice only
    assert _row_group_rows(pa.table({"p_row_id": ["a"] * 10})) == ROW_GROUP_ROWS


def test_a_partition_that_cannot_be_merged_is_left_as_it_was_and_reported(store_url):
    store = open_store(store_url)
    bad_day, good_day = closed_days(2)
    write_table(store, other_rows(bad_day, range(3)), table_name=OTHER)
    write_table(store, other_rows(bad_day, range(3, 6)).set_column(
        2, "actor", pa.array([1, 2, 3], pa.int64())), table_name=OTHER)  # actor: a number here, text elsewhere
    other_lake(store, [good_day], files=2, rows=3)
    bad_before = snapshot(store, f"{OTHER}/year={bad_day.year}/month={bad_day.month:02d}/day={bad_day.day:02d}/")

    summary = compact(store, now=NOW)
    assert summary.partitions_failed == 1 and summary.partitions_compacted == 1
    assert f"day={bad_day.day:02d}" in summary.errors[0] and "actor" in summary.errors[0]
    assert snapshot(store, f"{OTHER}/year={bad_day.year}/month={bad_day.month:02d}/day={bad_day.day:02d}/") == \
        bad_before
    with pytest.raises(Exception, match="1 partitions not compacted"):
        summary.raise_for_errors()


def test_a_small_memory_budget_merges_through_many_buckets_and_runs_into_the_same_files(store_url, tmp_path):
    # The budget bounds what one partition's merge holds; with a tiny one every partition goes through many buckets
    # and a merge of many runs, a few rows at a time, and must still give the files an ample budget gives.
    from shared.ops.compact_merge import sorted_runs, spool, work_folder

    store, reference = open_store(store_url), LocalStore(tmp_path / "reference")
    for lake in (store, reference):
        alert_lake(lake, LocalStore(tmp_path / "state"), alerts=240)
        other_lake(lake, closed_days(2), files=6, rows=120, payload=200)
    expected = {t: deduplicated(store, t) for t in (TABLE, OTHER)}
    busiest = max((p for p in partitions(store) if p.day < dt.date(2026, 3, 9)), key=lambda p: len(p.files))
    with work_folder() as folder:
        spooled = spool(store, busiest.files, Path(folder))
        runs = sorted_runs(spooled.paths, Path(folder), memory_bytes=32 * 1024)
        assert len(runs.paths) >= 4 and runs.slice_rows * 10 < runs.rows_out
        assert runs.rows_out == len({r["p_row_id"] for r in read_table_files(store, busiest.files)})

    compact(reference, now=NOW, target_bytes=40_000)
    summary = compact(store, now=NOW, target_bytes=40_000, memory_bytes=32 * 1024)
    assert summary.partitions_compacted > 0 and not summary.errors
    assert snapshot(store) == snapshot(reference)
    assert {t: deduplicated(store, t) for t in (TABLE, OTHER)} == expected


def read_table_files(store: Store, names) -> list[dict]:
    return [row for name in names for row in file_table(store, name).to_pylist()]


def test_settled_means_one_file_or_one_complete_set():
    def part(*files: str) -> Partition:
        return Partition(OTHER, NOW.date(), tuple(f"{OTHER}/year=2026/month=03/day=10/{f}" for f in files))

    digest, other = "a" * 20, "b" * 20
    assert part("part-1.parquet").settled() and part(f"compacted-{digest}-1of1.parquet").settled()
    assert part(f"compacted-{digest}-1of2.parquet", f"compacted-{digest}-2of2.parquet").settled()
    assert not part(f"compacted-{digest}-1of1.parquet", "part-1.parquet").settled()  # an update arrived
    assert not part(f"compacted-{digest}-1of3.parquet", f"compacted-{digest}-2of3.parquet").settled()  # cut short
    assert not part(f"compacted-{digest}-1of1.parquet", f"compacted-{other}-1of1.parquet").settled()  # two runs


# --- interruptions -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_run_stopped_between_write_and_delete_shows_the_same_rows_and_the_next_run_finishes(
        make_store_url, tmp_path, kind):
    store, reference = open_store(make_store_url(kind)), LocalStore(tmp_path / "reference")
    for lake in (store, reference):
        alert_lake(lake, LocalStore(tmp_path / "state"), alerts=160)
        other_lake(lake, closed_days(2), files=6, rows=120, payload=200)
    expected = {t: deduplicated(store, t) for t in (TABLE, OTHER)}
    compact(reference, now=NOW, target_bytes=40_000)

    # The write phase alone for every closed partition, and for one of them only some of the deletes.
    closed = [p for p in partitions(store) if p.day < dt.date(2026, 3, 9) and not p.settled()]
    for number, partition in enumerate(closed):
        done = merge_partition(store, partition, target_bytes=40_000)
        write_outputs(store, done)
        if number == 0:
            store.delete(done.inputs[0])
    for table in (TABLE, OTHER):
        raw = Counter(read_table(store, table)["p_row_id"].to_pylist())
        assert max(raw.values()) >= 2, "the outputs should sit beside their inputs"
        assert deduplicated(store, table) == expected[table]
    if kind == "local":  # and the same through DuckDB, as an analyst's view reads it
        import duckdb

        glob = str(LocalStore(store.url).root / OTHER / "**" / "*.parquet")
        [(count,)] = duckdb.connect().execute(f"SELECT count(*) FROM (SELECT * FROM read_parquet('{glob}') "
                                              "QUALIFY row_number() OVER (PARTITION BY p_row_id) = 1)").fetchall()
        assert count == len(expected[OTHER])

    summary = compact(store, now=NOW, target_bytes=40_000)
    assert summary.partitions_compacted == len(closed) and not summary.errors
    assert snapshot(store) == snapshot(reference)  # the same files, byte for byte, as an uninterrupted run
    assert compact(store, now=NOW, target_bytes=40_000).partitions_compacted == 0


def distinct_rows(store: Store, table: str) -> pa.Table:
    """The lake's rows with exact copies removed (pyarrow's group-by, not our code), by p_row_id; each p_row_id once.

    For lakes without duplicates of their own, this is what a reader that deduplicates on p_row_id sees."""
    rows = read_table(store, table)
    distinct = rows.group_by(rows.column_names, use_threads=False).aggregate([]).sort_by("p_row_id")
    assert len(set(distinct["p_row_id"].to_pylist())) == distinct.num_rows, "one p_row_id, two different rows"
    return distinct


def test_a_file_written_while_a_partition_is_compacted_stays_and_is_merged_next_run(store_url):
    store = open_store(store_url)
    day = closed_days(1)[0]
    other_lake(store, [day], files=3, rows=5)
    (partition,) = partitions(store)
    done = merge_partition(store, partition)
    # The normalizer lands a late batch in the partition after compaction read it.
    (late,) = write_table(store, other_rows(day, range(100, 103)), table_name=OTHER)
    write_outputs(store, done)
    delete_inputs(store, done)
    assert sorted(store.list(f"{OTHER}/")) == sorted([*done.outputs, late])
    assert read_table(store, OTHER).num_rows == 18
    compact(store, now=NOW)
    (name,) = store.list(f"{OTHER}/")
    assert file_table(store, name).num_rows == 18


def compact_process(url: str, target_mb: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shared.cli", "compact", "--lake", url, "--target-mb",
                             str(target_mb)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def compacted_names(store: Store) -> set[str]:
    return {name for name in store.list(f"{OTHER}/") if "/compacted-" in name}


@pytest.mark.kill
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_killing_compact_at_random_points_never_loses_or_doubles_a_row(make_store_url, tmp_path, kind):
    url = make_store_url(kind)
    store, reference = open_store(url), LocalStore(tmp_path / "reference")
    days = [dt.date(2020, 1, 20) - dt.timedelta(days=i) for i in range(8)]  # closed on any date the command runs
    for lake in (store, reference):
        other_lake(lake, days, files=8, rows=300, payload=1000)
    target_mb = 0.4  # about 4 files per partition, so kills also land between the writes of one partition
    rng = random.Random(4)
    kills = 0
    for attempt in range(3):
        expected = distinct_rows(reference, OTHER)  # the same files, never compacted (until the end)
        proc = compact_process(url, target_mb)
        # Killed once it has uploaded its k-th file, whatever it does at that moment (the next write, the deletes
        # of the partition just written, the merge of the next one): an event of the run, not a time.
        seen, wanted = compacted_names(store), rng.randint(1, 3)
        while proc.poll() is None and len(compacted_names(store) - seen) < wanted:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate()
        # Whatever the kill interrupted, a reader that keeps one row per p_row_id sees exactly the same rows.
        assert distinct_rows(store, OTHER).equals(expected)
        # Late updates keep landing in old partitions, compacted or not, between runs.
        for day in rng.sample(days, 2):
            late = other_rows(day, range(10_000 + attempt * 10, 10_010 + attempt * 10), payload=1000)
            for lake in (store, reference):
                write_table(lake, late, table_name=OTHER)
    assert kills >= 1, "the first run has dozens of files to write after its third: the kill lands while it runs"
    # And a partition stopped exactly between its writes and its deletes, the state a kill there leaves (writes and
    # deletes are atomic), which the next process must finish.
    stopped = next(p for p in partitions(store, [OTHER]) if not p.settled())
    done = merge_partition(store, stopped, target_bytes=round(target_mb * 1024 * 1024))
    write_outputs(store, done)
    assert set(done.outputs) <= set(store.list(f"{stopped.path}/")) and set(done.inputs) - set(done.outputs)

    last = compact_process(url, target_mb)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err.decode()[-2000:]
    assert orjson.loads(out)["errors"] == []
    # The same files, byte for byte, as one uninterrupted run over the same data.
    compact(reference, target_bytes=round(target_mb * 1024 * 1024))
    assert snapshot(store) == snapshot(reference)
    assert Counter(read_table(store, OTHER)["p_row_id"].to_pylist()).most_common(1)[0][1] == 1


# --- the command ---------------------------------------------------------------------------------------------------

def test_the_command_prints_a_summary_and_dry_run_changes_nothing(store_url):
    store = open_store(store_url)
    # The command compacts with the real clock: one day open and one closed on any date (grace 1, then 0).
    days = [dt.date(2999, 1, 5), dt.date(2020, 1, 2)]
    other_lake(store, days, files=3, rows=4)
    before = snapshot(store)
    runner = CliRunner()
    dry = runner.invoke(main, ["compact", "--lake", store_url, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    summary = orjson.loads(dry.output)
    assert summary["dry_run"] and summary["partitions_compacted"] == 1 and summary["files_in"] == 3
    assert summary["files_out"] == 1 and summary["rows_out"] == 12
    assert snapshot(store) == before
    real = runner.invoke(main, ["compact", "--lake", store_url, "--table", OTHER, "--grace-days", "0",
                                "--target-mb", "1"], catch_exceptions=False)
    assert real.exit_code == 0 and orjson.loads(real.output)["partitions_compacted"] == 1
    assert len(day_files(store, OTHER)[days[1]]) == 1 and len(day_files(store, OTHER)[days[0]]) == 3
    unknown = runner.invoke(main, ["compact", "--lake", store_url, "--table", "no_such_table"])
    assert unknown.exit_code == 2 and unknown.output.count("\n") == 1 and "no_such_table" in unknown.output


def test_a_delta_table_is_left_alone(store_url):
    store = open_store(store_url)
    day = closed_days(1)[0]
    other_lake(store, [day], files=2, rows=3)
    store.write(f"{OTHER}/_delta_log/00000000000000000000.json", b"{}")  # its log names the files
    write_table(store, other_rows(day, range(3)), table_name="plain")
    write_table(store, other_rows(day, range(3, 6)), table_name="plain")
    before = snapshot(store, f"{OTHER}/")
    summary = compact(store, now=NOW)
    assert summary.tables == ["plain"] and summary.partitions_compacted == 1
    assert snapshot(store, f"{OTHER}/") == before
