"""The indicator index (shared/ops/index_build.py writes it at compaction, shared/read/indicator_index.py reads it
for `graphlake search`): a search with the index gives exactly the hits of one without it, whatever happened to the
index or to its day after it was written (a file landed later, the day compacted again, a file rewritten, the index
damaged, deleted or emptied), and the damage is found and repaired by compaction and `graphlake index check`.

Two tables: real normalized alerts (their latest-version rule), and a sign-in table another producer writes in the
lake's layout (the index is generic over p_any_* columns). Compaction writes row groups of a few rows here, so that
search reads files in part, by the row groups the index names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import random
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from normalizers.names import TABLE as ALERTS
from shared.cli import main
from shared.core.layout import INDEX_FOLDER, footer_digest, index_name, parse_index_file, partition_path
from shared.core.storage import Store, open_store
from shared.land.lake_writer import write_table
from shared.ops import compact as compact_module
from shared.ops import index_build
from shared.ops.compact import compact, partitions
from shared.ops.index_build import DIFFERENT, MISSING, ORPHAN, STALE, UNREADABLE, check_lake, listed_indexes
from shared.ops.status import check as check_status
from shared.read import index_bloom, indicator_index
from shared.read.lake_reader import LakeFile
from shared.read.query import connect
from shared.read.search import search, terms_for
from tests.ops.test_compact import NOW, alert_lake

UTC = dt.UTC
SIGNINS = "entra_signin_logs"
CLOSED = [dt.date(2026, 3, d) for d in range(4, 9)]  # grace 1 day at NOW (10 March): 8 March and before are closed
OPEN = dt.date(2026, 3, 9)
SINCE, UNTIL = dt.datetime(2026, 3, 1, tzinfo=UTC), NOW + dt.timedelta(hours=1)


def signin_rows(day: dt.date, start: int, count: int, seed: str) -> pa.Table:
    rng = random.Random(f"{day}{start}{seed}")
    base = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    ips = [[f"203.0.113.{rng.randrange(40)}"] + ([f"198.51.100.{rng.randrange(10)}"] if rng.random() < 0.3 else [])
           for _ in range(count)]
    users = [[f"user{rng.randrange(25)}@contoso.com"] for _ in range(count)]
    return pa.table({
        "id": [f"{seed}-{day:%m%d}-{i}" for i in range(start, start + count)],
        "p_row_id": [f"{seed}-{day:%m%d}-{i}" for i in range(start, start + count)],
        "p_event_time": pa.array([base + dt.timedelta(seconds=rng.randrange(86_400)) for _ in range(count)],
                                 pa.timestamp("us", tz="UTC")),
        "userPrincipalName": [u[0] for u in users],
        "p_any_ip_addresses": pa.array(ips, pa.list_(pa.string())),
        "p_any_usernames": pa.array(users, pa.list_(pa.string())),
    })


def build(store: Store, state: Store) -> None:
    alert_lake(store, state, alerts=240)
    for day in [*CLOSED, OPEN]:
        for k in range(3):
            write_table(store, signin_rows(day, k * 40, 40, "s"), table_name=SIGNINS)


def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups of 16 rows, and indexes in row groups of 64 entries (so lookups pick groups by their bounds,
    across kinds)."""
    monkeypatch.setattr(compact_module, "ROW_GROUP_ROWS", 16)
    monkeypatch.setattr(index_build, "ROW_GROUP_ENTRIES", 64)


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory) -> Path:
    """The lake of both tables, compacted (and indexed) at NOW with small_groups: built once a module (and worker),
    read only through copies."""
    root = tmp_path_factory.mktemp("indexed")
    with pytest.MonkeyPatch.context() as monkeypatch:
        small_groups(monkeypatch)
        store = open_store(str(root / "lake"))
        build(store, open_store(str(root / "state")))
        summary = compact(store, now=NOW)
    assert not summary.errors and summary.indexes_written == summary.partitions_compacted > 0
    return root / "lake"


@pytest.fixture
def lake(built_lake, tmp_path, monkeypatch) -> str:
    """A copy of built_lake of this test's own, and small_groups for what the test compacts or indexes again."""
    small_groups(monkeypatch)
    shutil.copytree(built_lake, tmp_path / "lake")
    return str(tmp_path / "lake")


def run(lake: str, use_index: bool = True, **options: list[str]):
    return search(connect(lake, with_views=False), terms_for(options), SINCE, UNTIL, limit=10_000,
                  use_index=use_index)


def hits(result) -> list:
    return sorted((t.table, t.count, tuple(map(str, row))) for t in result.tables for row in t.rows)


def values(lake: str, column: str) -> list[str]:
    con = connect(lake)
    found = set()
    for table in (ALERTS, SIGNINS):
        found |= {v for (v,) in con.execute(f"SELECT DISTINCT unnest({column}) FROM {table}").fetchall()}
    return sorted(found)


def same_with_and_without(lake: str, **options: list[str]):
    with_index, without = run(lake, True, **options), run(lake, False, **options)
    assert hits(with_index) == hits(without), options
    return with_index


def day_files(store: Store, table: str, day: dt.date) -> list[str]:
    return [n for n in store.list(f"{partition_path(table, day)}/") if n.endswith(".parquet")]


# --- written by compaction, used by search -------------------------------------------------------------------------

def test_every_closed_partition_gets_an_index_and_every_value_gives_the_hits_of_a_full_scan(lake: str) -> None:
    store = open_store(lake)
    indexed = listed_indexes(store)
    closed = {(p.table, p.day) for p in partitions(store) if p.day < dt.date(2026, 3, 9)}
    assert set(indexed) == closed and all(len(names) == 1 for names in indexed.values())
    assert (SIGNINS, OPEN) not in indexed
    assert pq.read_metadata(io.BytesIO(store.read(indexed[(SIGNINS, CLOSED[0])][0]).data)).num_row_groups > 1
    ips = values(lake, "p_any_ip_addresses")
    assert len(ips) > 40
    partial = 0
    for ip in ips[::4]:
        result = same_with_and_without(lake, ip=[ip])
        use = result.index[SIGNINS]
        assert use.from_index == len(CLOSED) and use.scanned == {indicator_index.NO_INDEX: 1}
        partial += use.files_in_part
    assert partial, "no search read a file in part: the row groups were not used"
    for user in values(lake, "p_any_usernames")[::6]:
        same_with_and_without(lake, user=[user])
    # Several values of several kinds at once, and --all-versions (the latest-version rule runs on the hits).
    result = same_with_and_without(lake, ip=ips[:3], user=["user3@contoso.com"])
    assert sum(t.count for t in result.tables)
    assert hits(search(connect(lake, with_views=False), terms_for({"ip": ips[:5]}), SINCE, UNTIL, limit=10_000,
                       all_versions=True)) == \
        hits(search(connect(lake, with_views=False), terms_for({"ip": ips[:5]}), SINCE, UNTIL, limit=10_000,
                    all_versions=True, use_index=False))


def test_an_index_footer_carries_its_manifest_and_bloom_filter_once(lake: str) -> None:
    """A reader hashes and parses the footer of every index of a sweep's days: it holds the manifest, the bloom
    filter and the statistics a lookup needs, not pyarrow's copy of the schema, which repeated the manifest."""
    store = open_store(lake)
    for names in listed_indexes(store).values():
        metadata = pq.read_metadata(io.BytesIO(store.read(names[0]).data))
        assert set(metadata.metadata) == {indicator_index.METADATA_KEY.encode(), indicator_index.BLOOM_KEY.encode()}
        group = metadata.row_group(0)
        assert [group.column(i).is_stats_set for i in range(4)] == [True, True, False, False]


def _bloom(data: bytes) -> tuple[indicator_index.Manifest, index_bloom.Bloom]:
    entries = pq.read_metadata(io.BytesIO(data)).metadata
    manifest = indicator_index.Manifest.from_json(entries[indicator_index.METADATA_KEY.encode()])
    assert manifest.bloom and manifest.bloom[0] == index_bloom.SCHEME
    bloom = entries[indicator_index.BLOOM_KEY.encode()]
    return manifest, index_bloom.Bloom(manifest.bloom[1], manifest.bloom[2], bloom)


def test_every_entry_of_a_built_index_is_in_its_bloom_filter(lake: str) -> None:
    store = open_store(lake)
    for names in listed_indexes(store).values():
        data = store.read(names[0]).data
        _, bloom = _bloom(data)
        entries = pq.read_table(io.BytesIO(data), columns=["kind", "value"]).to_pylist()
        assert entries and all(bloom.may_hold(e["kind"], {e["value"]}) for e in entries)
        assert bloom.bits >= index_bloom.BITS_PER_ENTRY * len({(e["kind"], e["value"]) for e in entries})


def test_the_bloom_filter_holds_every_string_it_is_built_from(monkeypatch) -> None:
    # Empty values, non-ASCII ones, a value that is another's prefix, and chunks of 7 (values cut across chunks):
    # the writer's vectorized hash over Arrow's buffers and the reader's over one value's bytes agree.
    monkeypatch.setattr(index_bloom, "_CHUNK", 7)
    values = sorted(["", "a", "a\0", "ab", "ümlaut@contöso.com", "日本語.example", "🙂", "203.0.113.1",
                     *(f"198.51.100.{i}" for i in range(40))])
    kinds = ["p_any_domain_names"] * 3 + ["p_any_ip_addresses"] * (len(values) - 3)
    bloom = index_bloom.build(pa.array(kinds, pa.string()).slice(0), pa.array(values, pa.string()))
    assert all(bloom.may_hold(kind, {value}) for kind, value in zip(kinds, values, strict=True))
    absent = [f"45.155.205.{i}" for i in range(200)]
    assert sum(bloom.may_hold("p_any_ip_addresses", {v}) for v in absent) < 40  # 2% expected; 64 bits at least
    # The same bits from a slice of a bigger array (Arrow offsets not starting at zero).
    sliced = index_bloom.build(pa.array(["x", *kinds], pa.string()).slice(1), pa.array(["zz", *values]).slice(1))
    assert sliced == bloom


class _Recorded:
    """An index file whose reads are recorded (offset, bytes)."""

    def __init__(self, path: str, reads: list[tuple[int, int]]) -> None:
        self._file, self._reads = open(path, "rb"), reads

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def read(self, size: int = -1) -> bytes:
        offset = self._file.tell()
        data = self._file.read(size)
        self._reads.append((offset, len(data)))
        return data

    def readinto(self, buffer) -> int:
        offset = self._file.tell()
        count = self._file.readinto(buffer)
        self._reads.append((offset, count))
        return count

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def _read_day(lake: str, table: str, day: dt.date, ip: str) -> tuple[object, list[tuple[int, int]], bytes]:
    """What the day's index says of `ip`, the reads it took, and the index's bytes."""
    store = open_store(lake)
    [name] = listed_indexes(store)[(table, day)]
    reads: list[tuple[int, int]] = []
    found = [LakeFile(table, day, f"{lake}/{name}")]
    listed = {n.rsplit("/", 1)[1]: len(store.read(n).data) for n in day_files(store, table, day)}
    served = indicator_index.read_day(lambda path: _Recorded(path, reads), found, listed,
                                      {"p_any_ip_addresses": {ip}})
    return served, reads, store.read(name).data


def test_a_day_its_bloom_filter_rules_out_is_not_read_past_its_footer(lake: str) -> None:
    # Values the day does not hold but its row groups' bounds span: without the filter each reads a row group.
    store = open_store(lake)
    day = CLOSED[0]
    [name] = listed_indexes(store)[(SIGNINS, day)]
    manifest, bloom = _bloom(store.read(name).data)
    absent = [f"203.0.113.{n}{suffix}" for n in range(40) for suffix in ("0", "5", "x")]
    spanned = [ip for ip in absent if any(b[0] == b[2] == "p_any_ip_addresses" and b[1] <= ip <= b[3]
                                          for b in manifest.bounds)]
    negative = [ip for ip in spanned if not bloom.may_hold("p_any_ip_addresses", {ip})]
    assert len(negative) > len(spanned) * 0.9 and len(spanned) > 20
    for ip in negative:
        served, reads, data = _read_day(lake, SIGNINS, day, ip)
        assert served[1] == {} and served[0] == manifest
        footer_start, _ = _footer(data)
        assert reads and all(offset + size <= len(data) and offset + size > footer_start for offset, size in reads)
        assert len(reads) <= 2
    # A value the day holds is read in its row group, and found.
    held = values(lake, "p_any_ip_addresses")[0]
    served, reads, data = _read_day(lake, SIGNINS, day, held)
    assert any(offset < _footer(data)[0] for offset, _ in reads)


def test_an_index_without_a_bloom_filter_reads_as_before(lake: str) -> None:
    # Indexes written before the filter: their footer holds the manifest alone; every row group the bounds choose
    # is read.
    store = open_store(lake)
    for (table, day), [name] in listed_indexes(store).items():
        stored = pq.read_table(io.BytesIO(store.read(name).data))
        manifest = indicator_index.Manifest.from_json(stored.schema.metadata[indicator_index.METADATA_KEY.encode()])
        out = io.BytesIO()
        with pq.ParquetWriter(out, index_build.SCHEMA, **index_build._WRITE_OPTIONS) as writer:
            writer.write_table(stored.replace_schema_metadata(None), row_group_size=index_build.ROW_GROUP_ENTRIES)
            writer.add_key_value_metadata({indicator_index.METADATA_KEY: dataclasses.replace(manifest, bloom=None)
                                           .to_json()})
        store.delete(name)
        store.write(_named_for(name, out.getvalue()), out.getvalue())
    absent = "203.0.113.15x"  # no row holds it; a row group's bounds span it
    served, reads, data = _read_day(lake, SIGNINS, CLOSED[0], absent)
    assert served[1] == {} and any(offset < _footer(data)[0] for offset, _ in reads)
    for ip in [*SIGNIN_IPS, "203.0.113.77"]:
        result = same_with_and_without(lake, ip=[ip])
        assert result.index[SIGNINS].from_index == len(CLOSED)


def test_a_value_no_file_holds_reads_no_closed_day(lake: str) -> None:
    result = same_with_and_without(lake, ip=["45.155.205.250"])
    use = result.index[SIGNINS]
    assert use.from_index == len(CLOSED)
    assert use.files_read == len(day_files(open_store(lake), SIGNINS, OPEN))  # the open day's files only
    assert sorted(result.searched) == sorted([ALERTS, SIGNINS])


def test_evidence_kinds_read_the_alerts_whole(lake: str) -> None:
    result = same_with_and_without(lake, file_name=["mimikatz.exe"], ip=["203.0.113.1"])
    assert result.index[ALERTS].scanned == {indicator_index.NOT_INDEXED_KIND: result.index[ALERTS].days}
    assert result.index[SIGNINS].from_index == len(CLOSED)


def test_readers_that_do_not_know_the_index_never_meet_it(lake: str) -> None:
    store = open_store(lake)
    assert any(n.startswith(f"{INDEX_FOLDER}/") for n in store.list(""))
    con = connect(lake)
    assert set(con.files) == {ALERTS, SIGNINS} and not any(INDEX_FOLDER in d for d in con.definitions[:2])
    for table in (ALERTS, SIGNINS):
        files = duckdb.connect().execute(f"SELECT DISTINCT filename FROM read_parquet('{con.lake.table_glob(table)}',"
                                         " filename = true)").fetchall()
        assert files and not any(INDEX_FOLDER in f for (f,) in files)
    assert all(not p.table.startswith("_") for p in partitions(store))


# --- an index that no longer tells the truth -----------------------------------------------------------------------

def late_file(store: Store, day: dt.date, ip: str) -> str:
    """A batch landed in a closed, indexed day: one row with an IP no other row has."""
    late = signin_rows(day, 1000, 1, "late").set_column(4, "p_any_ip_addresses",
                                                        pa.array([[ip]], pa.list_(pa.string())))
    [name] = write_table(store, late, table_name=SIGNINS)
    return name


def test_a_file_landed_after_the_index_is_read_whole(lake: str) -> None:
    store = open_store(lake)
    late_file(store, CLOSED[1], "45.155.205.77")
    result = same_with_and_without(lake, ip=["45.155.205.77"])
    assert [(t.table, t.count) for t in result.tables] == [(SIGNINS, 1)]
    assert result.index[SIGNINS].from_index == len(CLOSED)  # the index still serves the files it names
    # The next compaction merges the late file and indexes the day again.
    assert compact(store, now=NOW).indexes_written == 1
    result = same_with_and_without(lake, ip=["45.155.205.77"])
    assert result.index[SIGNINS].files_read == 1 + len(day_files(store, SIGNINS, OPEN))


def test_a_day_compacted_again_without_its_index_is_read_whole(lake: str) -> None:
    store = open_store(lake)
    late_file(store, CLOSED[2], "45.155.205.78")
    # Compacted without writing the index (as an older graphlake would): the old index names files gone now.
    assert compact(store, now=NOW, index=False).partitions_compacted == 1
    result = same_with_and_without(lake, ip=["45.155.205.78"])
    assert [(t.table, t.count) for t in result.tables] == [(SIGNINS, 1)]
    assert result.index[SIGNINS].scanned[indicator_index.STALE] == 1


def test_a_file_rewritten_under_its_name_makes_the_index_stale(lake: str) -> None:
    store = open_store(lake)
    [name] = day_files(store, SIGNINS, CLOSED[0])
    table = pq.read_table(io.BytesIO(store.read(name).data))
    extra = signin_rows(CLOSED[0], 2000, 1, "x").set_column(4, "p_any_ip_addresses",
                                                             pa.array([["45.155.205.79"]], pa.list_(pa.string())))
    out = io.BytesIO()
    pq.write_table(pa.concat_tables([table, extra.cast(table.schema)]), out)
    store.write(name, out.getvalue())
    result = same_with_and_without(lake, ip=["45.155.205.79"])
    assert [(t.table, t.count) for t in result.tables] == [(SIGNINS, 1)]
    assert result.index[SIGNINS].scanned[indicator_index.STALE] == 1


def _garbage(data: bytes, start: int, end: int) -> bytes:
    rng = random.Random(1)
    return data[:start] + bytes(rng.randrange(256) for _ in range(end - start)) + data[end:]


def _pages_damaged(data: bytes) -> bytes:
    """Garbage over the column chunks' pages, the footer intact: the file still opens."""
    footer = int.from_bytes(data[-8:-4], "little")
    return _garbage(data, 4, len(data) - footer - 8)


SIGNIN_IPS = ["203.0.113.1", "203.0.113.2", "198.51.100.3"]


def _damage(store: Store, damage: str) -> None:
    for (table, day), [name] in listed_indexes(store).items():
        data = store.read(name).data
        store.write(name, {"truncated": data[: len(data) // 2], "not parquet": b"{}", "empty": b"",
                           "garbage inside": _garbage(data, 4, len(data) - 4),
                           "pages": _pages_damaged(data)}[damage])


@pytest.mark.parametrize("damage", ["truncated", "garbage inside", "not parquet", "empty"])
def test_a_damaged_index_is_not_trusted(lake: str, damage: str) -> None:
    store = open_store(lake)
    _damage(store, damage)
    for ip in SIGNIN_IPS:
        result = same_with_and_without(lake, ip=[ip])
        assert result.tables and result.index[SIGNINS].scanned[indicator_index.UNREADABLE] == len(CLOSED)
    findings = check_lake(store, closed_before=OPEN).findings
    assert {f.state for f in findings} == {UNREADABLE} and len(findings) == len(listed_indexes(store))


def test_damage_inside_an_index_whose_footer_reads_is_found_by_the_check(lake: str) -> None:
    # The search reads an index's footer and the one or two row groups its value falls in; damage elsewhere in
    # the file (or in a bloom filter) can pass unseen there. The check reads every page, with its checksum.
    store = open_store(lake)
    _damage(store, "pages")
    findings = check_lake(store, closed_before=OPEN, rebuild=True).findings
    assert {f.state for f in findings} <= {UNREADABLE, DIFFERENT}
    assert len(findings) == len(listed_indexes(store)) and all(f.rebuilt for f in findings)
    for ip in SIGNIN_IPS:
        result = same_with_and_without(lake, ip=[ip])
        assert result.tables and result.index[SIGNINS].from_index == len(CLOSED)


def test_one_damaged_index_among_good_ones_costs_only_its_day(lake: str) -> None:
    store = open_store(lake)
    [name] = listed_indexes(store)[(SIGNINS, CLOSED[3])]
    store.write(name, store.read(name).data[:100])
    for ip in SIGNIN_IPS:
        use = same_with_and_without(lake, ip=[ip]).index[SIGNINS]
        assert use.scanned[indicator_index.UNREADABLE] == 1 and use.from_index == len(CLOSED) - 1


def test_a_missing_index_is_scanned_then_written_by_the_next_compaction(lake: str) -> None:
    store = open_store(lake)
    [name] = listed_indexes(store)[(SIGNINS, CLOSED[0])]
    store.delete(name)
    result = same_with_and_without(lake, ip=values(lake, "p_any_ip_addresses")[:4])
    assert result.index[SIGNINS].scanned[indicator_index.NO_INDEX] == 2  # that day and the open one
    summary = compact(store, now=NOW)
    assert summary.indexes_repaired == 1 and summary.partitions_compacted == 0
    assert compact(store, now=NOW).indexes_repaired == 0
    assert run(lake, ip=["203.0.113.1"]).index[SIGNINS].from_index == len(CLOSED)


def test_an_index_of_the_first_format_is_not_trusted_and_the_timer_record_counts_its_repair(lake: str,
                                                                                               tmp_path) -> None:
    # Its name carries no footer digest: nothing to verify its footer by.
    store = open_store(lake)
    [name] = listed_indexes(store)[(SIGNINS, CLOSED[0])]
    first_format = name[:-len("-" + "0" * 20 + ".parquet")] + ".parquet"
    store.write(first_format, store.read(name).data)
    store.delete(name)
    result = same_with_and_without(lake, ip=SIGNIN_IPS)
    assert result.index[SIGNINS].scanned[indicator_index.STALE] == 1
    summary = compact(store, now=NOW)
    assert summary.indexes_repaired == 1 and store.read(first_format) is None
    state = open_store(str(tmp_path / "health-state"))
    compact_module.record_health(state, summary)
    [finding] = check_status(state, NOW, 900)
    assert (finding.component, finding.state) == ("compact", "OK")
    assert finding.reason.endswith("indexes: 0 written with their partitions, 1 found missing or stale and written "
                                   "again"), finding.reason
    assert same_with_and_without(lake, ip=SIGNIN_IPS).index[SIGNINS].from_index == len(CLOSED)


def test_index_check_names_each_fault_and_repair_rebuilds_it(lake: str) -> None:
    store = open_store(lake)
    indexes = listed_indexes(store)
    # missing
    [missing] = indexes[(SIGNINS, CLOSED[0])]
    store.delete(missing)
    # unreadable
    [broken] = indexes[(SIGNINS, CLOSED[1])]
    store.write(broken, b"PAR1 not an index")
    # different: a writer lost entries, and named what it wrote by its footer, so search trusts it: only the check
    # can tell
    [emptied] = indexes[(SIGNINS, CLOSED[2])]
    table = pq.read_table(io.BytesIO(store.read(emptied).data))
    out = io.BytesIO()
    pq.write_table(table.slice(0, table.num_rows // 2), out)
    store.delete(emptied)
    store.write(_named_for(emptied, out.getvalue()), out.getvalue())
    # stale: a file landed after the index
    late_file(store, CLOSED[3], "45.155.205.80")
    # orphan: an index whose day holds no files any more
    orphan = index_name(SIGNINS, dt.date(2026, 2, 1), ["gone.parquet"], "0" * 20)
    store.write(orphan, store.read(indexes[(SIGNINS, CLOSED[4])][0]).data)

    lake_args = ["--lake", lake, "--grace-days", "0"]
    result = CliRunner().invoke(main, ["index", "check", *lake_args])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    for state, day in ((MISSING, CLOSED[0]), (UNREADABLE, CLOSED[1]), (DIFFERENT, CLOSED[2]), (STALE, CLOSED[3]),
                       (ORPHAN, dt.date(2026, 2, 1))):
        assert any(line.startswith(state) and f"{SIGNINS} {day}" in line for line in lines), (state, lines)
    assert "indexes not OK" in lines[-1]
    # grace 0 counts 9 March as closed too: it has no index yet.
    assert any(line.startswith(MISSING) and f"{SIGNINS} {OPEN}" in line for line in lines)

    repaired = CliRunner().invoke(main, ["index", "check", *lake_args, "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "(rebuilt)" in repaired.output and "(removed)" in repaired.output
    assert store.read(orphan) is None
    again = CliRunner().invoke(main, ["index", "check", *lake_args])
    assert again.exit_code == 0 and again.output.splitlines()[-1].startswith("11 closed partitions checked, 0 ")
    result = same_with_and_without(lake, ip=["45.155.205.80"])
    assert result.index[SIGNINS].from_index == len(CLOSED) + 1


def test_index_rebuild_writes_every_closed_day_again(lake: str) -> None:
    store = open_store(lake)
    before = listed_indexes(store)
    [name] = before[(ALERTS, CLOSED[-1])]
    store.delete(name)
    result = CliRunner().invoke(main, ["index", "rebuild", "--lake", lake, "--table", SIGNINS, "--day",
                                       CLOSED[0].isoformat()])
    assert result.exit_code == 0 and "1 closed partitions checked, 0 indexes not OK, 1 rebuilt" in result.output
    assert (ALERTS, CLOSED[-1]) not in listed_indexes(store)
    result = CliRunner().invoke(main, ["index", "rebuild", "--lake", lake])
    assert result.exit_code == 0, result.output
    # The same indexes again (names are digests of the files), and those of the days open at NOW but closed by now.
    after = listed_indexes(store)
    assert {key: after[key] for key in before} == before and len(after) == len(before) + 3
    bad = CliRunner().invoke(main, ["index", "rebuild", "--lake", lake, "--day", "March"])
    assert bad.exit_code == 2 and "--day March: give days as YYYY-MM-DD" in bad.output


def test_search_says_how_the_index_served(lake: str) -> None:
    args = ["search", "--lake", lake, "--ip", "203.0.113.1", "--since", SINCE.isoformat(), "--until",
            UNTIL.isoformat()]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith(f"index: {SIGNINS}"))
    assert line.startswith(f"index: {SIGNINS} {len(CLOSED)} of {len(CLOSED) + 1} days narrowed by the indicator "
                           "index, 1 day read whole (1 no index (open or not yet indexed));")
    assert len([line for line in result.output.splitlines() if line.startswith("index: ")]) == 2  # one a table
    plain = CliRunner().invoke(main, [*args, "--no-index"])
    # No day of either table narrowed: one line for both, their days and files summed.
    by_table = run(lake, use_index=False, ip=["203.0.113.1"]).index
    days = sum(use.days for use in by_table.values())
    files = sum(use.files_in_range for use in by_table.values())
    assert len(by_table) == 2 and by_table[SIGNINS].days == len(CLOSED) + 1
    assert [line for line in plain.output.splitlines() if line.startswith("index: ")] == [
        f"index: 2 tables 0 of {days} days narrowed by the indicator index, {days} days read whole ({days} "
        f"--no-index); {files} of {files} files read"]
    hit_lines = [line for line in result.output.splitlines() if not line.startswith("index:")]
    assert hit_lines == [line for line in plain.output.splitlines() if not line.startswith("index:")]


def test_index_names_parse_back_and_stay_outside_every_table() -> None:
    name = index_name(SIGNINS, CLOSED[0], ["b.parquet", "a.parquet"], "f" * 20)
    assert name == index_name(SIGNINS, CLOSED[0], ["a.parquet", "b.parquet"], "f" * 20)
    assert name.startswith(f"{INDEX_FOLDER}/{partition_path(SIGNINS, CLOSED[0])}/indicators-")
    parsed = parse_index_file(name)
    assert (parsed.table, parsed.day) == (SIGNINS, CLOSED[0])
    assert parse_index_file(f"{partition_path(SIGNINS, CLOSED[0])}/x.parquet") is None


def test_on_blob_storage_the_index_is_written_read_and_checked_the_same(make_store_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(compact_module, "ROW_GROUP_ROWS", 16)
    url = make_store_url("azurite")
    store = open_store(url)
    build(store, open_store(str(tmp_path / "state")))
    assert compact(store, now=NOW).indexes_written == len(CLOSED) + 3
    late_file(store, CLOSED[1], "45.155.205.81")
    for ip in [*SIGNIN_IPS, "45.155.205.81"]:
        result = same_with_and_without(url, ip=[ip])
        assert result.tables and result.index[SIGNINS].from_index == len(CLOSED)
    assert same_with_and_without(url, ip=SIGNIN_IPS).index[SIGNINS].files_in_part
    [name] = listed_indexes(store)[(SIGNINS, CLOSED[0])]
    store.write(name, b"damaged")
    assert same_with_and_without(url, ip=SIGNIN_IPS).index[SIGNINS].scanned[indicator_index.UNREADABLE] == 1
    findings = check_lake(store, closed_before=OPEN, rebuild=True).findings
    assert sorted((f.state, f.day) for f in findings) == [(STALE, CLOSED[1].isoformat()),
                                                          (UNREADABLE, CLOSED[0].isoformat())]


# --- damage the footer read does not show: every read of the index verifies what it uses ---------------------------

def _footer(data: bytes) -> tuple[int, int]:
    """Where the footer (thrift metadata) starts and ends."""
    length = int.from_bytes(data[-8:-4], "little")
    return len(data) - 8 - length, len(data) - 8


def _in_footer(data: bytes, old: bytes, new: bytes) -> bytes:
    start, end = _footer(data)
    assert data[start:end].count(old), old
    return data[:start] + data[start:end].replace(old, new) + data[end:]


def _page_value_changed(data: bytes, old: bytes, new: bytes) -> bytes:
    """The index written again with uncompressed pages (as a writer may), then `old` changed to `new` in its pages:
    they still decode, to other values."""
    table = pq.read_table(io.BytesIO(data))
    out = io.BytesIO()
    pq.write_table(table, out, compression="none", use_dictionary=False, write_page_checksum=True)
    plain = out.getvalue()
    start, _ = _footer(plain)
    assert plain[:start].count(old), old
    return plain[:start].replace(old, new) + plain[start:]


HIDDEN_IP = "203.0.113.1"


@pytest.mark.parametrize("damage", ["page", "statistic", "manifest"])
def test_damage_the_footer_read_passes_never_hides_a_hit(lake: str, damage: str) -> None:
    # Each damage leaves a file that opens and reads; without verification the search believes it and misses hits.
    store = open_store(lake)
    for (table, day), [name] in listed_indexes(store).items():
        if table != SIGNINS:
            continue
        data = store.read(name).data
        if damage == "page":  # the value's entries now name another value
            data = _page_value_changed(data, b"\x0b\x00\x00\x00" + HIDDEN_IP.encode(), b"\x0b\x00\x00\x00203.0.113.9")
        elif damage == "statistic":  # the row group's minimum above the value: a reader skips the group
            data = _in_footer(data, b"198.51.100.0", b"299.51.100.0")
        else:  # the manifest's row groups: the hits are looked for in other rows
            data = _in_footer(data, b'":[16,', b'":[61,')
        store.delete(name)
        store.write(_named_for(name, data) if damage == "page" else name, data)
    result = same_with_and_without(lake, ip=[HIDDEN_IP])
    assert result.tables
    assert result.index[SIGNINS].scanned[indicator_index.UNREADABLE] == len(CLOSED)


def test_a_damaged_bloom_filter_is_refused_with_its_footer_and_never_hides_a_hit(lake: str) -> None:
    # Every bit of each sign-in day's filter cleared: believed, it would rule every value out.
    store = open_store(lake)
    for (table, day), [name] in listed_indexes(store).items():
        if table != SIGNINS:
            continue
        data = store.read(name).data
        _, bloom = _bloom(data)
        store.write(name, _in_footer(data, bloom.data, bytes(len(bloom.data))))
    for ip in SIGNIN_IPS:
        result = same_with_and_without(lake, ip=[ip])
        assert result.tables and result.index[SIGNINS].scanned[indicator_index.UNREADABLE] == len(CLOSED)
    # Written so by a writer that then named the index by that footer: the footer verifies, so only the check,
    # which builds the index again, can see it.
    for (table, day), [name] in listed_indexes(store).items():
        if table == SIGNINS:
            data = store.read(name).data
            store.delete(name)
            store.write(_named_for(name, data), data)
    findings = check_lake(store, closed_before=OPEN, rebuild=True).findings
    assert {(f.state, f.detail) for f in findings} == {(DIFFERENT, "its bloom filter does not match the files")}
    assert len(findings) == len(CLOSED)
    for ip in SIGNIN_IPS:
        assert same_with_and_without(lake, ip=[ip]).index[SIGNINS].from_index == len(CLOSED)


def _named_for(name: str, data: bytes) -> str:
    """The index's name with the digest of this footer: pages damaged after it was written, their checksums alone
    can tell."""
    return f"{name[:-len('0' * 20 + '.parquet')]}{footer_digest(data)}.parquet"


def test_a_bloom_filter_of_no_bits_or_probes_answers_maybe() -> None:
    # A manifest's parameters are verified with the footer, yet a filter of nothing to probe must not raise (an
    # IndexError no caller takes for a damaged index) or answer "none": it answers "maybe", and the row groups are
    # read.
    from shared.read.index_bloom import Bloom

    for bloom in (Bloom(0, 5, b""), Bloom(64, 0, bytes(8))):
        assert bloom.may_hold("p_any_ip_addresses", {"198.51.100.7"})
