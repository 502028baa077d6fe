"""Figures of the lake's read side that the README quotes, besides the 1M-alert search (bench_search.py).

    .venv/bin/python bench/bench_lake_reads.py [--alerts 40000] [--days 2]

On --alerts alerts of the simulator's mix over --days days (so each day partition is large), normalized in
batches of 500 into a local lake:
1. `graphlake compact --grace-days 0` as its own process: seconds, peak RSS (os.wait4), the rows of the largest
   partition, and the rows per row group and bytes per row in memory that compaction chose;
2. the `security_alert_evidence` view: seconds to read every evidence row (best of 3), per 100,000 alert versions;
3. the compacted lake copied to Azurite (started here from node_modules): `graphlake search --ip` over the last
   30 days as the search runs it (downloading the days first) against DuckDB reading the same files through
   fsspec directly (best of 3 each).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.read import views  # noqa: E402
from shared.land.normalize import InboundEvent, normalize_events  # noqa: E402
from shared.read.query import connect  # noqa: E402
from shared.read.search import search, terms_for  # noqa: E402
from shared.core.storage import open_store  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402


def build(lake: Path, state: Path, alerts: int, days: float) -> None:
    tenant = Tenant(seed=5, alerts=alerts, days=days)
    for skip in range(0, alerts, 2000):
        _, page = tenant.query_json(top=2000, skip=skip, include_unknown_enum_members=True)
        for start in range(0, len(page), 500):
            normalize_events([InboundEvent(body=body) for body in page[start:start + 500]],
                             lake=open_store(str(lake)), state=open_store(str(state)))


def compaction(lake: Path) -> None:
    began = time.perf_counter()
    process = subprocess.Popen([str(REPO / ".venv" / "bin" / "graphlake"), "compact", "--lake", str(lake),
                                "--grace-days", "0"], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    if status:
        raise SystemExit(f"graphlake compact failed with status {status}")
    compacted = sorted(lake.rglob("compacted-*.parquet"), key=lambda f: pq.ParquetFile(f).metadata.num_rows)
    largest = pq.ParquetFile(compacted[-1]).metadata
    group = largest.row_group(0)
    print(f"  compaction: {seconds:.1f} s, peak RSS {usage.ru_maxrss / 1024:,.0f} MB; largest partition "
          f"{largest.num_rows:,} alerts in {compacted[-1].stat().st_size / 1e6:.1f} MB, row groups of "
          f"{group.num_rows:,} rows ({group.total_byte_size / group.num_rows:,.0f} bytes a row uncompressed)")


def evidence_view(lake: Path) -> None:
    connection = connect(str(lake))
    [(versions,)] = connection.execute("SELECT count(*) FROM security_alerts").fetchall()
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        [(rows, _)] = connection.execute("SELECT count(*), count(ip) FROM security_alert_evidence").fetchall()
        best = min(best, time.perf_counter() - began)
    print(f"  evidence view: {rows:,} evidence rows of {versions:,} alert versions in {best:.2f} s "
          f"({best * 100_000 / versions:.2f} s per 100,000 versions)")


def remote_search(lake: Path) -> None:
    with tempfile.TemporaryDirectory() as data, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        azurite = subprocess.Popen([str(REPO / "node_modules" / ".bin" / "azurite-blob"), "--blobHost", "127.0.0.1",
                                    "--blobPort", str(port), "--location", data, "--silent", "--loose",
                                    "--skipApiVersionCheck", "--disableTelemetry"], stdout=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/devstoreaccount1/lake"
            for _ in range(100):
                try:
                    store = open_store(url)
                    store.list("")
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    time.sleep(0.1)
            for file in lake.rglob("*.parquet"):
                store.write(file.relative_to(lake).as_posix(), file.read_bytes())
            until = dt.datetime.now(dt.UTC)
            since = until - dt.timedelta(days=30)
            [(ip,)] = connect(str(lake)).execute(
                "SELECT p_any_ip_addresses[1] FROM security_alerts WHERE len(p_any_ip_addresses) > 0 LIMIT 1").fetchall()
            downloaded = serial = float("inf")
            for _ in range(3):
                began = time.perf_counter()
                search(connect(url, with_views=False), terms_for({"ip": [ip]}), since, until)
                downloaded = min(downloaded, time.perf_counter() - began)
                connection = connect(url, with_views=False)
                files = [f.path for fs in connection.files.values() for f in fs if since.date() <= f.day]
                began = time.perf_counter()
                connection.execute(f"SELECT count(*) FROM {views.read_parquet(files)} "
                                   f"WHERE list_contains(p_any_ip_addresses, '{ip}')").fetchall()
                serial = min(serial, time.perf_counter() - began)
            print(f"  search of the compacted lake on Azurite, 30 days: {downloaded:.2f} s downloading the days "
                  f"first (graphlake search), {serial:.2f} s for DuckDB reading the same files through fsspec")
        finally:
            azurite.terminate()
            azurite.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=40_000)
    parser.add_argument("--days", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        lake, state = Path(work) / "lake", Path(work) / "state"
        build(lake, state, args.alerts, args.days)
        print(f"{args.alerts:,} alerts over {args.days:g} days, normalized in batches of 500: "
              f"{len(list(lake.rglob('*.parquet'))):,} files")
        compaction(lake)
        evidence_view(lake)
        remote_search(lake)


if __name__ == "__main__":
    main()
