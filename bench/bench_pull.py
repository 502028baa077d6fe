"""Pull at scale against the simulator: peak RSS of `graphlake pull --once` for a 10k and a 100k backlog, and Graph
calls per run against the fewest pages the backlog needs.

Run: .venv/bin/python bench/bench_pull.py [--sizes 10000 100000]
Prints figures; asserts nothing. The pull runs as its own process (os.wait4 gives its peak RSS); the simulator
runs in this one.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from simulator.server import GraphSimulator  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402

PAGE = 2000


def measure(alerts: int) -> dict:
    started = time.perf_counter()
    tenant = Tenant(seed=3, alerts=alerts, days=7.0)
    generated = time.perf_counter() - started
    with GraphSimulator(tenant) as sim, tempfile.TemporaryDirectory() as work:
        env = {**os.environ, **sim.environment(), "STATE_URL": f"{work}/state", "LAKE_URL": f"{work}/lake",
               "PULL_DELAY_SECONDS": "0", "PULL_MAX_RUN_SECONDS": "3600"}
        time.sleep(1.1)
        read, write = os.pipe()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.dup2(write, 1)
            os.execve(sys.executable, [sys.executable, "-m", "shared.cli", "pull", "--once"], env)
        os.close(write)
        output = b""
        while chunk := os.read(read, 65536):
            output += chunk
        _, status, usage = os.wait4(pid, 0)
        took = time.perf_counter() - started
    summary = orjson.loads(output.splitlines()[-1])
    slices = summary["slices_planned"]
    return {
        "alerts": alerts, "sent": summary["sent"], "exit": os.waitstatus_to_exitcode(status),
        "peak_rss_mb": usage.ru_maxrss / 1024, "seconds": took, "alerts_per_s": summary["sent"] / took,
        "graph_calls": summary["graph"]["calls"], "pages": summary["graph"]["pages"],
        "min_pages": math.ceil(alerts / PAGE), "slices": slices, "tenant_generation_s": generated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    sizes = parser.parse_args().sizes
    results = [measure(n) for n in sizes]
    for r in results:
        print(f"backlog {r['alerts']:>7}: sent {r['sent']:>7} in {r['seconds']:6.1f} s ({r['alerts_per_s']:,.0f}/s), "
              f"peak RSS {r['peak_rss_mb']:6.1f} MB, Graph calls {r['graph_calls']} for {r['pages']} pages "
              f"(fewest pages for the backlog: {r['min_pages']}; one call per slice at least: {r['slices']} slices), "
              f"exit {r['exit']}")
    if len(results) > 1:
        print(f"peak RSS ratio {results[-1]['alerts']}/{results[0]['alerts']}: "
              f"{results[-1]['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
