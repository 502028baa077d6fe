"""The Azure Monitor logs beside the alerts at scale: records normalized per core against alerts, a day of a million
sign-ins landed and compacted in bounded memory, and `graphlake search --ip` over 30 days of alerts and 30 million
sign-ins.

    .venv/bin/python bench/bench_logs.py [--part throughput|day|search|all] [--records N] [--alerts N]
        [--day-records N] [--search-records N] [--search-alerts N] [--work DIR]

1. throughput (one core, CPU time, best and median of --repeat, interleaved): `normalize_events` on --alerts alerts
   of the simulator's mix in batches of 500 events (what normalize_alerts gets), and on --records sign-ins
   (bench/log_records.py: a 10,000-user tenant's interactive and non-interactive sign-ins) in Event Hub bodies of
   50 records, batches of 100 events, with the LOGS family (what normalize_logs gets); into an in-memory lake. The
   figure is records per second per core and its ratio to the alerts' (the issue's goal: 3x).
2. day: --day-records sign-ins of one UTC day landed as normalize_logs lands them (batches of 100 events of 50
   records: one file per batch), then that day merged whole in memory (the baseline, bench_compact.py's) and
   `graphlake compact` of it; each step in its own process, with its seconds and peak RSS (os.wait4), the lake's
   files and bytes before and after.
3. search: a lake of 30 days of alerts (--search-alerts of the simulator's mix, normalized and compacted) is searched
   for the IP of its newest pass-the-hash alert, in-process and as the `graphlake search` command; then
   --search-records sign-ins over the same 30 days (a million a day by default, written directly as compacted
   parquet with the log tables' schema by the real normalizer's row function on a sample, then repeated with fresh
   ids, times and addresses, since normalizing 30 million records would take the machine for hours) are added, one
   in every 100,000 from the searched IP, and the same search runs again. Figures: seconds (best of --repeat) and
   peak RSS of the command, before and after, and the ratio.

Prints figures; asserts nothing about speed or memory (the searches must find the same alert, and the sign-ins
planted, or the script stops).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

PARSE_TIME = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
EVENTS_PER_BATCH = 100
RECORDS_PER_EVENT = 50
ALERT_BATCH = 500
# Row groups of the generated sign-in files: about what compaction writes for rows of ~1.4 KB uncompressed (its
# groups are bounded by ROW_GROUP_BYTES too), and a modest amount of memory while generating.
GROUP_ROWS = 40_000


# --- 1. throughput ------------------------------------------------------------------------------------------------

def throughput(alerts: int, records: int, repeat: int) -> None:
    from bench_normalize import MemoryStore, simulator_mix
    from log_records import SignIns, bodies
    from normalizers.core import canonical
    from shared.land.normalize import LOGS, InboundEvent, normalize_events

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    alert_lines = simulator_mix(alerts)
    alert_batches = [alert_lines[i:i + ALERT_BATCH] for i in range(0, len(alert_lines), ALERT_BATCH)]
    sign_ins = SignIns().records(records, dt.date(2026, 6, 2))
    log_bodies = bodies(sign_ins, RECORDS_PER_EVENT)
    log_batches = [log_bodies[i:i + EVENTS_PER_BATCH] for i in range(0, len(log_bodies), EVENTS_PER_BATCH)]

    def run_alerts() -> None:
        for batch in alert_batches:
            result = normalize_events([InboundEvent(b) for b in batch], lake=MemoryStore(), state=MemoryStore(),
                                      parse_time=PARSE_TIME)
            if result.quarantined:
                raise RuntimeError(f"alerts quarantined: {result.quarantined[:3]}")

    def run_logs() -> None:
        for batch in log_batches:
            result = normalize_events([InboundEvent(b) for b in batch], lake=MemoryStore(), state=MemoryStore(),
                                      parse_time=PARSE_TIME, family=LOGS)
            if result.quarantined:
                raise RuntimeError(f"records quarantined: {result.quarantined[:3]}")

    runs = {"alerts (normalize_alerts)": (run_alerts, len(alert_lines)),
            "sign-ins (normalize_logs)": (run_logs, len(sign_ins))}
    for run, _ in runs.values():  # imports, pyarrow's first calls
        run()
    gc.collect()
    gc.freeze()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, (run, _) in runs.items():
            canonical.cache_clear()
            started = time.process_time()
            run()
            seconds[name].append(time.process_time() - started)
    rates = {}
    print(f"one core, CPU time, best (median) of {repeat}; alerts {sum(map(len, alert_lines)) / len(alert_lines):,.0f}"
          f" bytes each, sign-in records {sum(map(len, log_bodies)) / len(sign_ins):,.0f} bytes each")
    for name, (_, count) in runs.items():
        best, median = min(seconds[name]), statistics.median(seconds[name])
        rates[name] = count / best
        print(f"  {name:28s} {count:>8,} in {best:6.2f} s: {count / best:9,.0f} /s per core, "
              f"{best / count * 1e6:6.1f} us each (median {median / count * 1e6:6.1f})")
    ratio = rates["sign-ins (normalize_logs)"] / rates["alerts (normalize_alerts)"]
    print(f"  sign-ins per second / alerts per second: {ratio:.2f} (goal 3.00)")


# --- 2. a day of sign-ins -----------------------------------------------------------------------------------------

def _child(*args: str) -> tuple[float, int, str]:
    """Seconds, peak RSS (bytes) and output of `python bench_logs.py --child ...` in a process of its own."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read() if process.stdout else ""
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"child {args} failed: {output}")
    return time.monotonic() - started, usage.ru_maxrss * 1024, output.strip()


def land_day(lake: str, state: str, count: int, day: str) -> None:
    """Child: `count` sign-ins of `day` landed batch by batch, generated as they go (memory is the landing's)."""
    from log_records import SignIns, bodies
    from shared.core.storage import open_store
    from shared.land.normalize import LOGS, InboundEvent, normalize_events

    lake_store, state_store = open_store(lake), open_store(state)
    sign_ins = SignIns()
    per_batch = EVENTS_PER_BATCH * RECORDS_PER_EVENT
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    step = 86_400 / count
    rows = 0
    for first in range(0, count, per_batch):
        records = [sign_ins.record(start + dt.timedelta(seconds=(first + n) * step))
                   for n in range(min(per_batch, count - first))]
        result = normalize_events([InboundEvent(b) for b in bodies(records, RECORDS_PER_EVENT)], lake=lake_store,
                                  state=state_store, family=LOGS)
        rows += result.rows
    print(rows)


def compact_day(lake: str) -> None:
    from shared.core.storage import open_store
    from shared.ops.compact import compact

    summary = compact(open_store(lake), grace_days=0, tables=["entra_signin_logs"])
    summary.raise_for_errors()
    print(summary.to_json())


def _files(folder: Path) -> tuple[int, int]:
    files = list(folder.rglob("*.parquet"))
    return len(files), sum(f.stat().st_size for f in files)


def day(work: Path, count: int) -> None:
    lake, state = work / "day-lake", work / "day-state"
    the_day = "2026-06-02"
    seconds, rss, rows = _child("land", str(lake), str(state), str(count), the_day)
    files, size = _files(lake / "entra_signin_logs")
    print(f"landed {int(rows):,} sign-ins of one day in {seconds:.0f} s ({int(rows) / seconds:,.0f}/s, one process), "
          f"peak RSS {rss / 2**20:.0f} MB: {files} files, {size / 2**20:.0f} MB")
    [partition] = {path.parent for path in (lake / "entra_signin_logs").rglob("*.parquet")}
    seconds, whole_rss, kept = _child("whole", str(partition))
    print(f"the baseline, that day merged whole in memory (bench_compact.py's): {int(kept):,} rows in {seconds:.0f} s, "
          f"peak RSS {whole_rss / 2**20:.0f} MB")
    seconds, rss, _ = _child("compact", str(lake))
    files, size = _files(lake / "entra_signin_logs")
    print(f"compacted that day in {seconds:.0f} s, peak RSS {rss / 2**20:.0f} MB ({rss / whole_rss:.2f}x the "
          f"baseline's): {files} files, {size / 2**20:.0f} MB ({size / int(rows):.0f} bytes a sign-in)")
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)


# --- 3. search over 30 days of alerts and 30M sign-ins ------------------------------------------------------------

def _alerts_lake(lake: Path, state: Path, alerts: int, now: dt.datetime) -> str:
    """30 days of the simulator's alerts, normalized in batches and compacted; the IP of the newest pass-the-hash."""
    from shared.core.storage import open_store
    from shared.land.normalize import InboundEvent, normalize_events
    from shared.ops.compact import compact
    from shared.read.query import connect
    from simulator.tenant import Tenant

    tenant = Tenant(seed=3, alerts=alerts, days=30.0, now=now)
    lake_store, state_store = open_store(str(lake)), open_store(str(state))
    for skip in range(0, alerts, 2000):
        _, page = tenant.query_json(top=2000, skip=skip, include_unknown_enum_members=True)
        normalize_events([InboundEvent(b) for b in page], lake=lake_store, state=state_store)
    compact(lake_store, grace_days=0).raise_for_errors()
    (ip,) = connect(str(lake)).execute(
        "SELECT p_any_ip_addresses[1] FROM security_alerts WHERE title ILIKE '%pass-the-hash%' "
        "AND len(p_any_ip_addresses) > 0 ORDER BY p_event_time DESC LIMIT 1").fetchone()
    return ip


def write_sign_in_days(lake: Path, records: int, days: int, now: dt.datetime, ip: str, plant_every: int) -> int:
    """`records` sign-ins over `days` days written as compacted day files of the log tables' schema. Rows are the
    real normalizer's (normalize_record) for a sample of records, then repeated with fresh row ids, times and
    addresses in Arrow; every `plant_every`-th row is from `ip`. Returns how many were planted."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from log_records import SignIns
    from normalizers.log_schema import PARQUET_WRITE_OPTIONS, SCHEMA
    from normalizers.logs import normalize_record
    from shared.core.layout import partition_path

    import pyarrow.parquet as pq

    sample_size = 20_000
    sign_ins = SignIns(seed=31)
    first_day = (now - dt.timedelta(days=days - 1)).date()
    sample = [normalize_record(r, source_id=None, source_label="Azure Monitor", parse_time=PARSE_TIME)[1]
              for r in sign_ins.records(sample_size, first_day)]
    template = pa.Table.from_pylist(sample, schema=SCHEMA)
    addresses = pa.array(sign_ins.addresses)
    rng = np.random.default_rng(7)
    per_day = records // days
    planted = 0
    for number in range(days):
        the_day = first_day + dt.timedelta(days=number)
        start = np.datetime64(dt.datetime(the_day.year, the_day.month, the_day.day), "us")
        folder = lake / partition_path("entra_signin_logs", the_day)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"compacted-{number:020x}-1of1.parquet"
        with pq.ParquetWriter(path, SCHEMA, **PARQUET_WRITE_OPTIONS) as writer:
            for offset in range(0, per_day, GROUP_ROWS):
                size = min(GROUP_ROWS, per_day - offset)
                chunk = template.take(pa.array(rng.integers(0, sample_size, size)))
                seconds = np.sort(rng.integers(0, 86_400_000_000, size))
                times = pa.array(start + seconds.astype("timedelta64[us]"), pa.timestamp("us", tz="UTC"))
                ids = pa.array([f"{number:04x}{offset + n:028x}" for n in range(size)])
                chosen = addresses.take(pa.array(rng.integers(0, len(addresses), size)))
                global_index = np.arange(offset, offset + size) + number * per_day
                plant = pa.array(global_index % plant_every == 0)
                planted += int(pc.sum(plant).as_py() or 0)
                chosen = pc.if_else(plant, pa.scalar(ip), chosen)
                ip_lists = pa.ListArray.from_arrays(pa.array(np.arange(size + 1, dtype=np.int32)), chosen)
                columns = {"time": times, "p_event_time": times, "p_row_id": ids, "callerIpAddress": chosen,
                           "p_any_ip_addresses": ip_lists}
                chunk = pa.table([columns.get(f.name, chunk[f.name]) for f in SCHEMA], schema=SCHEMA)
                writer.write_table(chunk, row_group_size=GROUP_ROWS)
    return planted


def search_child(lake: str, ip: str, repeat: int) -> None:
    """Child: the search in-process, best of `repeat`; prints seconds and the hits per table."""
    from shared.read.query import connect
    from shared.read.search import search, terms_for

    now = dt.datetime.now(dt.UTC)
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = search(connect(lake, with_views=False), terms_for({"ip": [ip]}), now - dt.timedelta(days=30), now,
                        limit=10)
        times.append(time.perf_counter() - started)
    hits = ",".join(f"{t.table}={t.count}" for t in result.tables)
    print(f"{min(times)} {statistics.median(times)} {hits}")


def search_bench(work: Path, alerts: int, records: int, repeat: int) -> None:
    now = dt.datetime.now(dt.UTC)
    lake, state = work / "search-lake", work / "search-state"
    started = time.monotonic()
    ip = _alerts_lake(lake, state, alerts, now)
    print(f"30 days of alerts: {alerts:,} normalized and compacted in {time.monotonic() - started:.0f} s; "
          f"searching for {ip}")

    def measure(what: str) -> tuple[float, int, str]:
        _, rss, output = _child("search", str(lake), ip, str(repeat))
        best, median, hits = output.split(" ", 2)
        command = []
        for _ in range(3):
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "shared.cli", "search", "--lake", str(lake), "--ip", ip,
                            "--format", "json"], check=True, capture_output=True, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
            command.append(time.monotonic() - started)
        files, size = _files(lake)
        print(f"  {what}: {files} files, {size / 2**30:.2f} GB; in-process {float(best):.2f} s (median "
              f"{float(median):.2f}), peak RSS {rss / 2**20:.0f} MB; graphlake search command {min(command):.2f} s; "
              f"hits {hits}")
        return float(best), rss, hits

    before, rss_before, _ = measure("alerts only")
    started = time.monotonic()
    planted = write_sign_in_days(lake, records, 30, now, ip, plant_every=100_000)
    print(f"  wrote {records:,} sign-ins over 30 days in {time.monotonic() - started:.0f} s ({planted} from {ip})")
    after, rss_after, hits = measure(f"alerts + {records:,} sign-ins")
    if f"entra_signin_logs={planted}" not in hits:
        raise SystemExit(f"the search did not find the {planted} planted sign-ins: {hits}")
    print(f"  search time with the sign-ins / alerts only: {after / before:.1f}x; peak RSS {rss_after / 2**20:.0f} MB "
          f"against {rss_before / 2**20:.0f} MB")
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        kind, *args = sys.argv[2:]
        if kind == "land":
            land_day(args[0], args[1], int(args[2]), args[3])
        elif kind == "compact":
            compact_day(args[0])
        elif kind == "whole":
            from bench_compact import whole_partition

            whole_partition(Path(args[0]))
        else:
            search_child(args[0], args[1], int(args[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["throughput", "day", "search", "all"], default="all")
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts for the throughput baseline")
    parser.add_argument("--records", type=int, default=50_000, help="sign-ins for the throughput figure")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--day-records", type=int, default=1_000_000)
    parser.add_argument("--search-alerts", type=int, default=100_000)
    parser.add_argument("--search-records", type=int, default=30_000_000)
    parser.add_argument("--work", help="folder for the lakes (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        work = Path(folder)
        if args.part in ("throughput", "all"):
            print("== records normalized per second per core, against alerts", flush=True)
            throughput(args.alerts, args.records, args.repeat)
        if args.part in ("day", "all"):
            print(f"\n== a day of {args.day_records:,} sign-ins landed and compacted", flush=True)
            day(work, args.day_records)
        if args.part in ("search", "all"):
            print(f"\n== graphlake search --ip over 30 days: {args.search_alerts:,} alerts, then "
                  f"{args.search_records:,} sign-ins beside them", flush=True)
            search_bench(work, args.search_alerts, args.search_records, args.repeat)


if __name__ == "__main__":
    main()
