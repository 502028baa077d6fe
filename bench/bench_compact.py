"""Compaction's memory on one large day partition: bounded (graphlake compact) against the whole partition in memory.

    .venv/bin/python bench/bench_compact.py [--alerts 200000] [--memory-mb 256]

Builds a local lake of --alerts alerts of the simulator's mix, all created on one UTC day (the default is 10x the
largest partition of bench_lake_reads.py, 20,222 alerts), normalized in batches of 500 as Event Hubs delivers them
(one file per batch), then runs on a copy of it, each as its own process, with peak RSS from os.wait4:
1. the baseline, the partition merged whole in memory as compaction did before it was bounded: every file read,
   concatenated, deduplicated on p_row_id, sorted, encoded as one parquet file;
2. compaction (`shared.ops.compact.compact`, what `graphlake compact --grace-days 0` runs), whose merge goes through a
   local work folder in bounded memory (shared/ops/compact_merge.py), here with a budget of --memory-mb.
Prints rows, bytes, seconds and peak RSS of each, and the ratio; checks both wrote the same number of rows. Asserts
nothing about speed or memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAY_END = dt.datetime(2026, 3, 10, 23, 0, tzinfo=dt.UTC)


def build(lake: Path, state: Path, alerts: int) -> None:
    from shared.land.normalize import InboundEvent, normalize_events
    from shared.core.storage import open_store
    from simulator.tenant import Tenant

    # 22 hours ending at 23:00 UTC: every alert is created on 10 March.
    tenant = Tenant(seed=5, alerts=alerts, days=22 / 24, now=DAY_END)
    lake_store, state_store = open_store(str(lake)), open_store(str(state))
    for skip in range(0, alerts, 2000):
        _, page = tenant.query_json(top=2000, skip=skip, include_unknown_enum_members=True)
        for start in range(0, len(page), 500):
            normalize_events([InboundEvent(body=body) for body in page[start:start + 500]], lake=lake_store,
                             state=state_store)


def whole_partition(folder: Path) -> None:
    """The baseline: the partition's files merged in memory at once (run in its own process)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(path) for path in sorted(folder.glob("*.parquet"))],
                             promote_options="default")
    order = pc.sort_indices(table, sort_keys=[("p_row_id", "ascending"), ("p_parse_time", "ascending")])
    ids = table["p_row_id"].take(order)
    first = pa.concat_arrays([pa.array([True]), pc.not_equal(ids[1:], ids[:-1]).combine_chunks()])
    kept = table.take(order.filter(first))
    del table
    kept = kept.take(pc.sort_indices(kept, sort_keys=[("p_event_time", "ascending"), ("p_row_id", "ascending")]))
    out = io.BytesIO()
    pq.write_table(kept, out, compression="zstd")
    print(kept.num_rows)


def run(command: list[str]) -> tuple[float, float, str]:
    """Seconds, peak RSS in MB and stdout of command."""
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO)
    out = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"{command[1:3]} failed with status {status}")
    return time.perf_counter() - began, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=202_220)
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)  # the baseline's own process
    args = parser.parse_args()
    if args.baseline:
        whole_partition(args.baseline)
        return
    import orjson
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as work:
        lake, state = Path(work) / "lake", Path(work) / "state"
        began = time.perf_counter()
        build(lake, state, args.alerts)
        [day] = {path.parent for path in lake.rglob("*.parquet")}
        files = sorted(day.glob("*.parquet"))
        size = sum(path.stat().st_size for path in files)
        memory = sum(pq.read_metadata(path).row_group(i).total_byte_size for path in files
                     for i in range(pq.read_metadata(path).num_row_groups))
        print(f"one day partition: {args.alerts:,} alerts in {len(files):,} files, {size / 1e6:,.0f} MB of parquet, "
              f"{memory / 1e6:,.0f} MB uncompressed (built in {time.perf_counter() - began:.0f} s)")
        python = sys.executable
        seconds, rss, out = run([python, str(Path(__file__).resolve()), "--baseline", str(day)])
        print(f"  whole partition in memory (the baseline): {int(out):,} rows, {seconds:.1f} s, "
              f"peak RSS {rss:,.0f} MB")
        copy = Path(work) / "copy"
        shutil.copytree(lake, copy)
        code = ("import sys; from shared.ops.compact import compact; from shared.core.storage import open_store; "
                "print(compact(open_store(sys.argv[1]), grace_days=0, memory_bytes=int(sys.argv[2])).to_json())")
        bounded_seconds, bounded_rss, bounded = run([python, "-c", code, str(copy), str(args.memory_mb * 1024 * 1024)])
        summary = orjson.loads(bounded)
        print(f"  compact (shared.ops.compact.compact, as graphlake compact runs it), memory budget {args.memory_mb} MB: "
              f"{summary['rows_out']:,} rows in {summary['files_out']} files, {bounded_seconds:.1f} s, "
              f"peak RSS {bounded_rss:,.0f} MB ({bounded_rss / rss:.2f}x the baseline's)")
        if summary["rows_out"] != int(out):
            raise SystemExit(f"the baseline kept {int(out):,} rows, compaction {summary['rows_out']:,}")

if __name__ == "__main__":
    main()
