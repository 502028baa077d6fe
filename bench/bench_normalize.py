"""Throughput of the normalizer on one core (normalize + enrich + parquet), next to orjson parse-only of the same bytes.

    .venv/bin/python bench/bench_normalize.py [ALERTS.jsonl] [--count N] [--batch-size N] [--repeat N]
        [--stages] [--profile N]

ALERTS.jsonl holds one Graph alert per line; without it, --count alerts of the simulator's mix (what
`graphlake simulate` serves, every provider, unknown evidence types included). Each pipeline starts from the same
bytes in memory and works batch by batch (default 2,000 alerts, one Graph page):

- orjson parse-only: `orjson.loads` of every line, the cyclic collector paused as graphlake pauses it;
- msgspec parse-only: the same with the JSON parser graphlake uses (it keeps integers beyond 64 bits exact);
- graphlake: `shared.land.normalize.normalize_events`, the code the normalize_alerts function runs: parse, normalize
  and enrich (typed columns, row ids, canonical p_any lists), the Arrow table, then `shared.land.lake_writer.write_table`
  (day partitions, zstd parquet) into an in-memory store.

Runs are interleaved --repeat times; the best is reported with the median beside it. Times are the process's CPU
time, pinned to one core, so that other work on a shared machine is not counted as ours. Each graphlake run starts
with an empty cache of canonical values, as a worker that has not seen these alerts would. The heap left by start-up
is frozen out of the collector first, as function_app.py does. Asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normalizers.core import canonical  # noqa: E402
from shared.core.storage import Blob  # noqa: E402
from shared.land.normalize import InboundEvent, normalize_events  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402

PARSE_TIME = datetime(2026, 7, 1, tzinfo=timezone.utc)
TARGET_ALERTS_PER_SECOND = 10_000  # Twice Graph's own ceiling: 150 calls/min x 2,000 alerts.
GRAPHLAKE = "graphlake normalize+enrich+parquet"


def simulator_mix(count: int) -> list[bytes]:
    tenant = Tenant(seed=3, alerts=count, days=7.0)
    return [body for skip in range(0, count, 2000)
            for body in tenant.query_json(top=2000, skip=skip, include_unknown_enum_members=True)[1]]


class MemoryStore:
    """The lake as a dict: no disk or network in the timing."""

    url = "memory://bench"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def read(self, name: str) -> Blob | None:
        # A Blob, as the stores give it: the detections' alert state reads `.data` and `.etag`.
        return Blob(self.blobs[name], "") if name in self.blobs else None

    def write(self, name: str, data: bytes, *, if_match: str | None = None, create_only: bool = False) -> str:
        self.blobs[name] = data
        return ""

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(name for name in self.blobs if name.startswith(prefix)))

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)


def _paused(parse: Callable[[bytes], object]) -> Callable[[list[bytes]], None]:
    def pipeline(batch: list[bytes]) -> None:
        gc.disable()
        try:
            [parse(line) for line in batch]
        finally:
            gc.enable()
    return pipeline


def graphlake(batch: list[bytes]) -> None:
    result = normalize_events([InboundEvent(body=line) for line in batch], lake=MemoryStore(), state=MemoryStore(),
                              parse_time=PARSE_TIME)
    if result.quarantined or result.rows + result.duplicates != len(batch):
        raise RuntimeError(f"graphlake lost alerts: {result}")


PIPELINES = {
    "orjson parse-only": _paused(orjson.loads),
    "msgspec parse-only": _paused(msgspec.json.Decoder().decode),
    GRAPHLAKE: graphlake,
}


def run_all(batches: list[list[bytes]], repeat: int) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {name: [] for name in PIPELINES}
    for _ in range(repeat):
        for name, pipeline in PIPELINES.items():
            canonical.cache_clear()
            started = time.process_time()
            for batch in batches:
                pipeline(batch)
            seconds[name].append(time.process_time() - started)
    return seconds


def stage_times(batches: list[list[bytes]], repeat: int) -> dict[str, float]:
    """Best seconds of a run for each half of normalize_events: into an Arrow table, then parquet."""
    from normalizers.names import TABLE
    from normalizers.schema import PARQUET_WRITE_OPTIONS
    from shared.land.lake_writer import write_table
    from shared.land.normalize import ALERTS, NormalizeResult

    best = {"parse + normalize into an Arrow table": float("inf"), "write zstd parquet": float("inf")}
    for _ in range(repeat):
        canonical.cache_clear()
        normalizing = writing = 0.0
        for batch in batches:
            events = [InboundEvent(body=line) for line in batch]
            gc.disable()
            started = time.process_time()
            (table,) = ALERTS.tables(ALERTS, events, MemoryStore(), PARSE_TIME, NormalizeResult()).values()
            normalized = time.process_time()
            gc.enable()
            write_table(MemoryStore(), table, table_name=TABLE, parquet_options=PARQUET_WRITE_OPTIONS)
            writing += time.process_time() - normalized
            normalizing += normalized - started
        for stage, spent in zip(best, (normalizing, writing)):
            best[stage] = min(best[stage], spent)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("alerts", nargs="?", help="JSON lines, one alert per line (default: the simulator's mix)")
    parser.add_argument("--count", type=int, default=20_000, help="alerts of the simulator's mix")
    parser.add_argument("--batch-size", type=int, default=2000, help="alerts per batch")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stages", action="store_true", help="then time parse+normalize and parquet apart")
    parser.add_argument("--profile", type=int, metavar="N", help="then profile one run: its N costliest functions")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    if args.alerts:
        lines = [line for line in Path(args.alerts).read_bytes().splitlines() if line.strip()]
    else:
        lines = simulator_mix(args.count)
    batches = [lines[start:start + args.batch_size] for start in range(0, len(lines), args.batch_size)]
    run_all(batches[:1], repeat=1)  # Imports and pyarrow's first-call setup.
    gc.collect()
    gc.freeze()
    seconds = run_all(batches, args.repeat)
    best = {name: min(runs) for name, runs in seconds.items()}

    print(f"{len(lines)} alerts from {args.alerts or 'the simulator mix'}, {sum(map(len, lines)) / len(lines):.0f} "
          f"bytes each on average, batches of {args.batch_size}, best (median) of {args.repeat}, one core")
    for name, runs in seconds.items():
        print(f"  {name:36s} {len(lines) / best[name]:10,.0f} alerts/s  {best[name] / len(lines) * 1e6:7.1f} us/alert"
              f"  (median {statistics.median(runs) / len(lines) * 1e6:7.1f})")
    ours = best[GRAPHLAKE]
    print(f"  graphlake / target {TARGET_ALERTS_PER_SECOND:,} alerts/s: {len(lines) / ours / TARGET_ALERTS_PER_SECOND:.2f}"
          f"; graphlake time / orjson parse-only time: {ours / best['orjson parse-only']:.2f}")
    if args.stages:
        for stage, spent in stage_times(batches, args.repeat).items():
            print(f"  stage: {stage:38s} {spent / len(lines) * 1e6:7.1f} us/alert (best of {args.repeat})")
    if args.profile:
        import cProfile
        import pstats

        canonical.cache_clear()
        with cProfile.Profile() as profiler:
            for batch in batches:
                graphlake(batch)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
