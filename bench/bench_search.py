"""Indicator search on a generated lake, before and after compaction, against scanning raw JSON lines with orjson.

    .venv/bin/python bench/bench_search.py [--alerts 1000000] [--days 90] [--batch-size 200] [--repeat 5] [--work DIR]

1. The simulator generates --alerts alerts over --days days (its usual mix of every provider). They are written
   once as JSON lines (the "raw" lake: what landing Graph's responses as they come would give) and normalized by
   the real normalizer in batches of --batch-size, as normalize_alerts receives them from Event Hubs, into a local
   lake: one file per batch and day, the small files compaction exists for.
2. The IP of the newest pass-the-hash alert is searched for over the last 30 days (as the demo does): first on the
   uncompacted lake, then after `graphlake compact` (grace 0, so every day but today is compacted). Each is timed
   in-process (open the lake, list it, search: best and median of --repeat) and as the `graphlake search` command
   (a new process: interpreter start and imports included, best of 3).
3. The baseline reads the JSON lines and, for each alert, parses it with orjson and checks createdDateTime against
   the range and every string in it against the IP: a plain scan, with no canonicalisation, that has to read all of
   it because raw lines have no partitions. It runs once; it is slow.

All three must find the same alerts (the script stops if they do not). It prints figures and asserts nothing about
speed. DuckDB uses both cores; the baseline one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.ops.compact import compact  # noqa: E402
from shared.land.normalize import InboundEvent, normalize_events  # noqa: E402
from shared.read.query import connect  # noqa: E402
from shared.read.search import search, terms_for  # noqa: E402
from shared.core.storage import open_store  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402

PAGE = 2000
PIVOT_SQL = """
SELECT p_any_ip_addresses[1] FROM security_alerts
WHERE title ILIKE '%pass-the-hash%' AND len(p_any_ip_addresses) > 0
ORDER BY p_event_time DESC LIMIT 1
"""


def build(work: Path, alerts: int, days: float, batch_size: int) -> tuple[Path, Path, float]:
    lake_dir, raw = work / "lake", work / "raw.jsonl"
    lake, state = open_store(str(lake_dir)), open_store(str(work / "state"))
    started = time.perf_counter()
    tenant = Tenant(seed=5, alerts=alerts, days=days)
    normalize_seconds = 0.0
    with raw.open("wb") as out, tqdm(total=alerts, unit=" alerts", desc="generate + normalize") as bar:
        for skip in range(0, alerts, PAGE):
            _, page = tenant.query_json(top=PAGE, skip=skip, include_unknown_enum_members=True)
            out.writelines(body + b"\n" for body in page)
            for start in range(0, len(page), batch_size):
                began = time.perf_counter()
                normalize_events([InboundEvent(body=body) for body in page[start:start + batch_size]],
                                 lake=lake, state=state)
                normalize_seconds += time.perf_counter() - began
            bar.update(len(page))
    print(f"  generated and normalized in {time.perf_counter() - started:.0f} s "
          f"({alerts / normalize_seconds:,.0f} alerts/s normalizing in batches of {batch_size})")
    return lake_dir, raw, normalize_seconds


def lake_shape(lake_dir: Path) -> str:
    files = list(lake_dir.rglob("*.parquet"))
    size = sum(f.stat().st_size for f in files)
    return f"{len(files):,} files, {size / 1e6:,.0f} MB"


def timed_search(lake: str, ip: str, since: dt.datetime, until: dt.datetime, repeat: int) -> tuple[list[float], int]:
    seconds, hits = [], -1
    for _ in range(repeat):
        began = time.perf_counter()
        result = search(connect(lake, with_views=False), terms_for({"ip": [ip]}), since, until)
        seconds.append(time.perf_counter() - began)
        hits = sum(t.count for t in result.tables)
    return seconds, hits


def timed_command(lake: str, ip: str, since: dt.datetime, until: dt.datetime) -> float:
    command = [str(REPO / ".venv" / "bin" / "graphlake"), "search", "--lake", lake, "--ip", ip,
               "--since", since.isoformat(), "--until", until.isoformat(), "--format", "json"]
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - began)
    return best


def json_scan(raw: Path, ip: str, since: dt.datetime, until: dt.datetime) -> tuple[float, int]:
    low, high = since.strftime("%Y-%m-%dT%H:%M:%S"), until.strftime("%Y-%m-%dT%H:%M:%S")

    def mentions(value: object) -> bool:
        if isinstance(value, str):
            return value == ip
        if isinstance(value, dict):
            return any(map(mentions, value.values()))
        if isinstance(value, list):
            return any(map(mentions, value))
        return False

    began = time.perf_counter()
    hits = 0
    with raw.open("rb") as lines:
        for line in lines:
            alert = orjson.loads(line)
            if low <= alert["createdDateTime"][:19] < high and mentions(alert):
                hits += 1
    return time.perf_counter() - began, hits


def report(name: str, seconds: list[float], command: float, baseline: float) -> None:
    best = min(seconds)
    print(f"  {name:22s} {best * 1000:7.0f} ms best (median {statistics.median(seconds) * 1000:.0f} ms), "
          f"command {command * 1000:.0f} ms;  JSON scan / search: {baseline / best:,.0f}x "
          f"(command: {baseline / command:,.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--batch-size", type=int, default=200, help="alerts per normalize batch (Event Hub batch)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", help="folder for the lake and the JSON lines (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.work) as work:
        print(f"{args.alerts:,} alerts over {args.days:g} days, normalize batches of {args.batch_size}, 2 cores")
        lake_dir, raw, _ = build(Path(work), args.alerts, args.days, args.batch_size)
        lake = str(lake_dir)
        [(ip,)] = connect(lake).execute(PIVOT_SQL).fetchall()
        until = dt.datetime.now(dt.UTC)
        since = until - dt.timedelta(days=30)
        print(f"  raw JSON lines: {raw.stat().st_size / 1e6:,.0f} MB; searching --ip {ip} over the last 30 days")

        before_shape = lake_shape(lake_dir)
        before, hits_before = timed_search(lake, ip, since, until, args.repeat)
        before_command = timed_command(lake, ip, since, until)

        began = time.perf_counter()
        summary = compact(open_store(lake), grace_days=0)
        compact_seconds = time.perf_counter() - began
        after_shape = lake_shape(lake_dir)
        after, hits_after = timed_search(lake, ip, since, until, args.repeat)
        after_command = timed_command(lake, ip, since, until)

        baseline, hits_scan = json_scan(raw, ip, since, until)
        if not hits_before == hits_after == hits_scan:
            raise SystemExit(f"the searches disagree: {hits_before} before compaction, {hits_after} after, "
                             f"{hits_scan} in the JSON scan")
        print(f"  {hits_after} hits in each; compaction: {compact_seconds:.0f} s, "
              f"{summary.partitions_compacted} partitions")
        print(f"  lake before compaction: {before_shape}; after: {after_shape}")
        print(f"  orjson scan of the JSON lines: {baseline:.1f} s")
        report("before compaction", before, before_command, baseline)
        report("after compaction", after, after_command, baseline)
        print(f"  before / after compaction: {min(before) / min(after):.1f}x")


if __name__ == "__main__":
    main()
