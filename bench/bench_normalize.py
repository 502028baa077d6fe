"""Throughput of the normalizer on one core, against orjson parse-only and a pandas baseline.

    .venv/bin/python bench/bench_normalize.py [ALERTS.jsonl] [--count N] [--batch-size N] [--repeat N]
        [--profile N] [--stages]

ALERTS.jsonl holds one Graph alert per line (the simulator's mix, say). Without it, the golden inputs of
every provider are replicated with distinct ids and lastUpdateDateTime values, as re-polled versions of
the same alerts would look. Every pipeline starts from the same bytes (one alert's JSON per line, already in
memory) and works batch by batch (default: 2000 alerts, one Graph page), keeping only the current batch
alive, as the pull does. What each measurement includes, exactly:

- orjson parse-only: `orjson.loads` of every line into a list, nothing else, with the cyclic garbage
  collector paused for the batch as graphlake's pipeline pauses it: what it costs to get these bytes into
  Python objects as a general JSON parser does, and what "x parse time" is relative to. The same loop with
  the collector running is printed too (`gc on`).
- graphlake: `shared.normalize.normalize_events`, the code the normalize_alerts function runs, on one
  InboundEvent per line: msgspec's decode of what the row keeps (or, for the mix's few alerts of other
  shapes, a general parse and the dict path), checks, normalize + enrich (typed columns, timestamps, row ids,
  the p_any indicator lists), the Arrow table, then `shared.lake.write_table`: sort by event time, split into
  UTC-day partitions, name each file by a hash of its row ids, parquet (zstd, schema.PARQUET_WRITE_OPTIONS)
  into bytes held by an in-memory store. Its collector pause is part of it.
- pandas: what one would write without graphlake: `json.loads` (standard library) of every line,
  `pandas.json_normalize`, every column holding lists or dicts (evidence, comments, ...) turned into JSON
  text with `json.dumps` because to_parquet rejects them otherwise, then `DataFrame.to_parquet` (pyarrow,
  zstd) into a BytesIO. It runs with the collector on, as such code would; the same pipeline with the
  collector paused is printed too, so the share of the ratio that is the pause can be seen. It types no
  timestamps, extracts no indicators, canonicalises nothing, does not partition or sort: strictly less
  work than graphlake.

Every pipeline runs --repeat times, interleaved so that a burst of load on a shared machine hits all of
them alike; the best run of each is reported, with the median beside it as a measure of the noise. Each
graphlake run starts with the normalizer's memos of canonical values empty (normalizers.core.clear_memos),
as a worker that has not seen these alerts would: otherwise every run after the first would find every
address, hash and URL of the mix canonicalised already, and the best run would measure re-reading alerts
seen before rather than normalizing new ones. The heap left by start-up (pyarrow, and pandas for the
baseline) is frozen out of the cyclic garbage collector first, as function_app.py does after its imports:
otherwise every collection re-walks objects no pipeline created, and that cost would measure the
benchmark's imports rather than the pipelines. The script pins itself to one core, prints figures and
asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import gc
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normalizers.core import clear_memos  # noqa: E402
from shared.normalize import InboundEvent, normalize_events  # noqa: E402

GOLDEN = Path(__file__).resolve().parent.parent / "normalizers" / "golden"
PARSE_TIME = datetime(2026, 7, 1, tzinfo=timezone.utc)
TARGET_ALERTS_PER_SECOND = 20_000
TARGET_MAX_TIMES_PARSE = 4.0
TARGET_MIN_TIMES_PANDAS = 5.0


def load_alert_lines(path: str | Path) -> list[bytes]:
    """The non-blank lines of a JSON-lines file, each one alert as Graph sent it."""
    return [line for line in Path(path).read_bytes().splitlines() if line.strip()]


def golden_mix(count: int) -> list[bytes]:
    """`count` alerts cycling through every golden input, each with its own id and lastUpdateDateTime."""
    templates = [alert for path in sorted(GOLDEN.glob("*.input.json"))
                 for alert in orjson.loads(path.read_bytes())]
    lines = []
    for number in range(count):
        alert = copy.deepcopy(templates[number % len(templates)])
        alert["id"] = f"{alert['id']}-{number}"
        updated = datetime.fromisoformat(alert["lastUpdateDateTime"]) + timedelta(seconds=number)
        alert["lastUpdateDateTime"] = updated.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
        lines.append(orjson.dumps(alert))
    return lines


class MemoryStore:
    """The lake as a dict: write_table's files end up as bytes in memory, no disk or network in the timing."""

    url = "memory://bench"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def read(self, name: str) -> tuple[bytes, str] | None:
        return (self.blobs[name], "") if name in self.blobs else None

    def write(self, name: str, data: bytes, *, if_match: str | None = None, create_only: bool = False) -> str:
        self.blobs[name] = data
        return ""

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(name for name in self.blobs if name.startswith(prefix)))

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)


def parse_only(batch: list[bytes]) -> None:
    gc.disable()  # As normalize_events does for its batch (see shared.normalize._gc_paused).
    try:
        [orjson.loads(line) for line in batch]
    finally:
        gc.enable()


def parse_only_gc_on(batch: list[bytes]) -> None:
    [orjson.loads(line) for line in batch]


def graphlake(batch: list[bytes]) -> None:
    lake = MemoryStore()
    result = normalize_events([InboundEvent(body=line) for line in batch], lake=lake, state=MemoryStore(),
                              parse_time=PARSE_TIME)
    if result.quarantined or result.rows + result.duplicates != len(batch):
        raise RuntimeError(f"graphlake lost alerts: {result}")


def pandas_baseline(batch: list[bytes]) -> None:
    import pandas as pd

    frame = pd.json_normalize([json.loads(line) for line in batch])
    for column in frame.columns[frame.dtypes == object]:
        frame[column] = frame[column].map(_as_text)
    frame.to_parquet(io.BytesIO(), engine="pyarrow", compression="zstd", index=False)


def pandas_baseline_gc_paused(batch: list[bytes]) -> None:
    gc.disable()
    try:
        pandas_baseline(batch)
    finally:
        gc.enable()


def _as_text(value: object) -> object:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


# What each pipeline needs before a run, outside the timing.
BEFORE_RUN: dict[Callable[[list[bytes]], None], Callable[[], None]] = {graphlake: clear_memos}


def run_all(pipelines: dict[str, Callable[[list[bytes]], None]], batches: list[list[bytes]],
            repeat: int) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(repeat):
        for name, pipeline in pipelines.items():
            if pipeline in BEFORE_RUN:
                BEFORE_RUN[pipeline]()
            started = time.perf_counter()
            for batch in batches:
                pipeline(batch)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("alerts", nargs="?", help="JSON lines, one alert per line (default: golden mix)")
    parser.add_argument("--count", type=int, default=20_000, help="alerts in the golden mix")
    parser.add_argument("--batch-size", type=int, default=2000, help="alerts per batch")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-pandas", action="store_true", help="skip both pandas pipelines")
    parser.add_argument("--profile", type=int, metavar="N",
                        help="then profile one more graphlake run and print its N costliest functions")
    parser.add_argument("--stages", action="store_true",
                        help="then time graphlake's two halves apart: normalizing into Arrow, writing parquet")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    lines = load_alert_lines(args.alerts) if args.alerts else golden_mix(args.count)
    batches = [lines[start:start + args.batch_size] for start in range(0, len(lines), args.batch_size)]
    pipelines = {
        "orjson parse-only": parse_only,
        "orjson parse-only, gc on": parse_only_gc_on,
        "graphlake normalize+enrich+write": graphlake,
    }
    if not args.no_pandas:
        pipelines["pandas json_normalize+to_parquet"] = pandas_baseline
        pipelines["pandas, gc paused"] = pandas_baseline_gc_paused
    run_all(pipelines, batches[:1], repeat=1)  # Imports and pyarrow's first-call setup.
    gc.collect()
    gc.freeze()
    seconds = run_all(pipelines, batches, args.repeat)
    best = {name: min(runs) for name, runs in seconds.items()}

    source = args.alerts or f"golden mix of {len(lines)} alerts"
    mean_bytes = sum(map(len, lines)) / len(lines)
    print(f"{len(lines)} alerts from {source}, {mean_bytes:.0f} bytes each on average, "
          f"batches of {args.batch_size}, best (median) of {args.repeat}, one core")
    for name, runs in seconds.items():
        print(f"  {name:34s} {len(lines) / best[name]:10,.0f} alerts/s  {best[name] / len(lines) * 1e6:7.1f} us/alert"
              f"  (median {statistics.median(runs) / len(lines) * 1e6:7.1f})")
    parse, parse_gc_on = best["orjson parse-only"], best["orjson parse-only, gc on"]
    ours = best["graphlake normalize+enrich+write"]
    print(f"  graphlake alerts/s / target {TARGET_ALERTS_PER_SECOND:,}: "
          f"{len(lines) / ours / TARGET_ALERTS_PER_SECOND:.2f}")
    print(f"  graphlake time / parse-only time: {ours / parse:.2f} (target <= {TARGET_MAX_TIMES_PARSE:g}); "
          f"/ parse-only with gc on: {ours / parse_gc_on:.2f}")
    if not args.no_pandas:
        pandas, pandas_paused = best["pandas json_normalize+to_parquet"], best["pandas, gc paused"]
        print(f"  pandas time / graphlake time: {pandas / ours:.2f} (target >= {TARGET_MIN_TIMES_PANDAS:g}); "
              f"pandas with gc paused / graphlake: {pandas_paused / ours:.2f}")

    if args.stages:
        for stage, seconds in stage_times(batches, args.repeat).items():
            print(f"  stage: {stage:32s} {seconds / len(lines) * 1e6:7.1f} us/alert (best of {args.repeat})")
    if args.profile:
        profile_graphlake(batches, args.profile)


def stage_times(batches: list[list[bytes]], repeat: int) -> dict[str, float]:
    """Best seconds of a whole run for each half of normalize_events, timed apart: the batch normalized into its
    Arrow table (collector paused, as there), then the table written by shared.lake.write_table."""
    from normalizers.names import TABLE
    from normalizers.schema import PARQUET_WRITE_OPTIONS
    from shared.lake import write_table
    from shared.normalize import NormalizeResult, _normalize_batch

    best_normalizing = best_writing = float("inf")
    for _ in range(repeat):
        clear_memos()
        normalizing = writing = 0.0
        for batch in batches:
            events = [InboundEvent(body=line) for line in batch]
            gc.disable()
            started = time.perf_counter()
            table = _normalize_batch(events, MemoryStore(), PARSE_TIME, NormalizeResult())
            normalized = time.perf_counter()
            gc.enable()
            write_table(MemoryStore(), table, table_name=TABLE, parquet_options=PARQUET_WRITE_OPTIONS)
            writing += time.perf_counter() - normalized
            normalizing += normalized - started
        best_normalizing, best_writing = min(best_normalizing, normalizing), min(best_writing, writing)
    return {"normalize into an Arrow table": best_normalizing, "write zstd parquet": best_writing}


def profile_graphlake(batches: list[list[bytes]], top: int) -> None:
    """One more graphlake run, as the timed ones start, under cProfile (which slows it: not a figure)."""
    import cProfile
    import pstats

    clear_memos()
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        graphlake(batch)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    main()
