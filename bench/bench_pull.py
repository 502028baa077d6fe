"""Pull at scale against the simulator: peak RSS of `graphlake pull --once` for a 10k and a 100k backlog, Graph
calls per run against the fewest pages the backlog needs, how long the simulator takes to build each backlog, and
what a tenant changing between page requests costs (the smallest backlog again in small pages, with --page-updates
alerts updated before every page after a query's first; ratios against the same backlog from a still tenant).

Run: .venv/bin/python bench/bench_pull.py [--sizes 10000 100000] [--page-updates 2]
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

from simulator.faults import Faults  # noqa: E402
from simulator.server import GraphSimulator  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402

PAGE = 2000


def measure(alerts: int, faults: Faults = Faults(), page_size: int = PAGE) -> dict:
    started = time.perf_counter()
    tenant = Tenant(seed=3, alerts=alerts, days=7.0)
    generated = time.perf_counter() - started
    with GraphSimulator(tenant, faults) as sim, tempfile.TemporaryDirectory() as work:
        env = {**os.environ, **sim.environment(), "STATE_URL": f"{work}/state", "LAKE_URL": f"{work}/lake",
               "PULL_DELAY_SECONDS": "0", "PULL_MAX_RUN_SECONDS": "3600",
               "PULL_PAGE_SIZE": str(page_size)}
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
        "min_pages": math.ceil(alerts / page_size), "slices": slices, "tenant_generation_s": generated,
        "rereads": summary["graph"]["rereads"], "splits": summary["graph"]["splits"],
        "unconfirmed": summary["unconfirmed_slices"], "page_updates": sim.counters.page_updates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--page-updates", type=int, default=2)
    parser.add_argument("--moving-page-size", type=int, default=100,
                        help="$top of the two runs compared with and without updates, small so slices span pages")
    args = parser.parse_args()
    results = [measure(n) for n in args.sizes]
    for r in results:
        print(f"backlog {r['alerts']:>7}: sent {r['sent']:>7} in {r['seconds']:6.1f} s ({r['alerts_per_s']:,.0f}/s), "
              f"peak RSS {r['peak_rss_mb']:6.1f} MB, Graph calls {r['graph_calls']} for {r['pages']} pages "
              f"(fewest pages for the backlog: {r['min_pages']}; one call per slice at least: {r['slices']} slices), "
              f"simulator built it in {r['tenant_generation_s']:.1f} s, exit {r['exit']}")
    if len(results) > 1:
        print(f"peak RSS ratio {results[-1]['alerts']}/{results[0]['alerts']}: "
              f"{results[-1]['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f}x (target <= 1.5x)")
    if args.page_updates:
        size, top = args.sizes[0], args.moving_page_size
        base = measure(size, page_size=top)
        moving = measure(size, Faults(page_updates=args.page_updates, seed=3), page_size=top)
        print(f"backlog {size:>7}, pages of {top}, still tenant: Graph calls {base['graph_calls']}, "
              f"{base['seconds']:.1f} s, exit {base['exit']}")
        print(f"backlog {size:>7}, pages of {top}, {args.page_updates} updates before every later page "
              f"({moving['page_updates']} in all): Graph calls {moving['graph_calls']} "
              f"({moving['graph_calls'] / base['graph_calls']:.2f}x the still tenant), {moving['rereads']} re-reads, "
              f"{moving['splits']} slices cut, {moving['unconfirmed']} unconfirmed, "
              f"{moving['seconds'] / base['seconds']:.2f}x the time, exit {moving['exit']}")


if __name__ == "__main__":
    main()
