"""What reading alert files costs `graphlake normalize`, next to normalizing the same alerts.

    .venv/bin/python bench/bench_alert_files.py [--count N] [--repeat N]

--count alerts of the simulator's mix in three forms (JSON lines; one Graph page, an alert a line; gzip-compressed
JSON lines) are read into records by `shared.land.alert_files.records`, then normalized by
`shared.land.normalize.normalize_events` into a temporary lake, all in one process. Times are CPU time of the process,
the best of --repeat runs; the ratio to normalizing is the figure to watch. Asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.land.alert_files import records  # noqa: E402
from shared.land.normalize import InboundEvent, normalize_events  # noqa: E402
from shared.core.storage import open_store  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    _, alerts = Tenant(seed=3, alerts=args.count, days=7.0).query_json(top=args.count)
    lines = b"\n".join(alerts) + b"\n"
    forms = {"JSON lines": lines, "one Graph page": b'{"value": [' + b",\n".join(alerts) + b"]}",
             "gzip JSON lines": gzip.compress(lines)}

    def normalize() -> None:
        with tempfile.TemporaryDirectory() as folder:
            normalize_events([InboundEvent(body=body) for body in alerts], lake=open_store(f"{folder}/lake"),
                             state=open_store(f"{folder}/state"))

    normalizing = best_of(args.repeat, normalize)
    print(f"normalize_events, {len(alerts)} alerts: {normalizing:.3f} s")
    for label, data in forms.items():
        reading = best_of(args.repeat, lambda data=data: sum(1 for _ in records(data, "bench")))
        print(f"read {label}: {reading:.3f} s, {reading / normalizing:.0%} of normalizing")


if __name__ == "__main__":
    main()
