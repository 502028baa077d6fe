"""`make bench`: every benchmark on the simulator's mix, figures printed for the README's performance section.

1. normalize + enrich + parquet on one core next to orjson parse-only of the same bytes (bench_normalize.py), on
   20,000 alerts of the simulator's mix written as JSON lines;
2. pull peak RSS at a 10k and a 100k backlog, and Graph calls per run (bench_pull.py);
3. indicator search on a lake of 1,000,000 alerts before and after compaction, against a JSON-lines scan
   (bench_search.py; needs ~5 GB of disk in the temporary folder);
4. compaction memory, the evidence view and a search of a lake on Azurite (bench_lake_reads.py);
5. compaction's peak RSS on one day of 202,220 alerts (10x the largest partition of 4) against the partition merged
   whole in memory (bench_compact.py);
6. the starter pack's rules per alert next to the normalize cost of the same alerts, and its scheduled rules over
   a lake of them (bench_detections.py);
7. what a dead destination costs a normalize batch, and the outbox writes of a batch while 2,000 alerts wait
   (bench_outbox.py);
8. freshness, Graph showing a version to the lake holding it, on the production settings and cadence over a live
   tenant for 5 minutes (bench_freshness.py);
9. the logs beside the alerts: sign-in records per core against alerts, a day of 1M sign-ins landed and compacted,
   search over 30 days of alerts and 30M sign-ins (bench_logs.py; needs ~6 GB of disk in the temporary folder).
10. the indicator index on a year of 100,000,000 generated alert and sign-in rows: a year-long IoC sweep with and
   without it, its size, its share of compaction (bench_index.py; ~20 GB of disk, most of an hour).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from simulator.tenant import Tenant  # noqa: E402


def simulator_mix(path: Path, alerts: int = 20_000) -> None:
    tenant = Tenant(seed=3, alerts=alerts, days=7.0)
    with path.open("wb") as out:
        for skip in range(0, alerts, 2000):
            _, page = tenant.query_json(top=2000, skip=skip, include_unknown_enum_members=True)
            out.writelines(body + b"\n" for body in page)


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        mix = Path(work) / "simulator-mix.jsonl"
        simulator_mix(mix)
        print("== normalize + enrich + write (python bench/bench_normalize.py <20,000-alert simulator mix>)",
              flush=True)
        subprocess.run([sys.executable, str(BENCH / "bench_normalize.py"), str(mix)], check=True)
    print("\n== pull at scale (python bench/bench_pull.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_pull.py")], check=True)
    print("\n== indicator search (python bench/bench_search.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_search.py")], check=True)
    print("\n== the lake's read side (python bench/bench_lake_reads.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_lake_reads.py")], check=True)
    print("\n== detections (python bench/bench_detections.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_detections.py")], check=True)
    print("\n== a dead destination and the outbox (python bench/bench_outbox.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_outbox.py")], check=True)
    print("\n== compaction in bounded memory (python bench/bench_compact.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_compact.py")], check=True)
    print("\n== freshness (python bench/bench_freshness.py --minutes 5)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_freshness.py"), "--minutes", "5"], check=True)
    print("\n== the logs beside the alerts (python bench/bench_logs.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_logs.py")], check=True)
    print("\n== the indicator index (python bench/bench_index.py)", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_index.py")], check=True)


if __name__ == "__main__":
    main()
