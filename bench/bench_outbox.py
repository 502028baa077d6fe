"""What a dead destination costs landing: normalize batches with the real-time rules on, with no destination, a
webhook that answers and a webhook that never answers, in the same run; and the outbox writes of a one-alert batch
while 2,000 alerts wait.

    .venv/bin/python bench/bench_outbox.py [--batches N] [--batch-size N] [--waiting N]

- batch time: `shared.land.normalize.normalize_events` with the starter pack's real-time rules (the passthrough
  rule alerts on most new alerts) into a local lake and state, wall clock per batch (a hanging destination costs
  waiting, not CPU). The three setups take turns batch by batch, each with its own lake and state, so load on the
  shared machine falls on all three alike. The hanging webhook is a TCP server on 127.0.0.1 that accepts and never
  answers; landing's default ALERT_DELIVERY_BUDGET_SECONDS (2 s) applies. Printed: median and first batch per
  setup, and the ratio of the medians to the no-destination one (the goal: hanging within 1.2x).
- outbox writes: per batch of the hanging setup above, with the time they took; and --waiting alerts left in the outbox by a dead
  destination, then one batch of one new alert; writes and deletes under detections/outbox/ counted by a LocalStore
  that counts them.

Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from bench_normalize import simulator_mix  # noqa: E402

from detections.delivery import OUTBOX, count_waiting  # noqa: E402
from detections.realtime import build_detector  # noqa: E402
from shared.core.settings import load_settings  # noqa: E402
from shared.core.storage import LocalStore  # noqa: E402
from shared.land.normalize import InboundEvent, normalize_events  # noqa: E402


class CountingStore(LocalStore):
    """Counts the writes and deletes under the outbox, and the time they take."""

    outbox_writes = 0
    outbox_seconds = 0.0

    def write(self, name, data, **conditions):
        started = time.perf_counter()
        try:
            return super().write(name, data, **conditions)
        finally:
            self._count(name, started)

    def delete(self, name):
        started = time.perf_counter()
        super().delete(name)
        self._count(name, started)

    def _count(self, name: str, started: float) -> None:
        if name.startswith(OUTBOX):
            self.outbox_writes += 1
            self.outbox_seconds += time.perf_counter() - started


def hanging_server() -> tuple[str, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hook", listener


def answering_server() -> tuple[str, ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook", server


def detector(url: str | None):
    hooks = json.dumps([{"type": "webhook", "name": "soc", "url": url}]) if url else ""
    return build_detector(load_settings({"RULES_ENABLED": "true", "ALERT_DESTINATIONS": hooks}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--waiting", type=int, default=2_000)
    args = parser.parse_args()

    lines = simulator_mix(args.batches * args.batch_size)
    batches = [lines[i * args.batch_size:(i + 1) * args.batch_size] for i in range(args.batches)]
    hanging_url, listener = hanging_server()
    answering_url, server = answering_server()
    setups = {"no destination": detector(None), "a webhook that answers": detector(answering_url),
              "a webhook that never answers": detector(hanging_url)}
    times: dict[str, list[float]] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory(prefix="graphlake-bench-outbox-") as work:
        stores = {name: (LocalStore(f"{work}/{i}/lake"), CountingStore(f"{work}/{i}/state"))
                  for i, name in enumerate(setups)}
        for batch in batches:
            for name, rules in setups.items():
                lake, state = stores[name]
                started = time.perf_counter()
                normalize_events([InboundEvent(body=b) for b in batch], lake=lake, state=state, detector=rules)
                times[name].append(time.perf_counter() - started)
        waiting = {name: count_waiting(stores[name][1]) for name in setups}
        hanging_state = stores["a webhook that never answers"][1]

        print(f"{args.batches} normalize batches of {args.batch_size:,} alerts of the simulator's mix, real-time "
              "rules on, local lake and state, wall clock per batch")
        base = statistics.median(times["no destination"])
        for name, runs in times.items():
            median = statistics.median(runs)
            print(f"  {name:30s} median {median * 1000:7.0f} ms  first {runs[0] * 1000:7.0f} ms  "
                  f"{median / base:5.2f}x  ({waiting[name]:,} alerts waiting after)")
        print(f"  outbox blob writes of the hanging setup: {hanging_state.outbox_writes} in {args.batches} batches "
              f"({waiting['a webhook that never answers']:,} alerts queued), "
              f"{hanging_state.outbox_seconds * 1000 / args.batches:.0f} ms a batch")

        state = CountingStore(f"{work}/outbox/state")
        lake = LocalStore(f"{work}/outbox/lake")
        dead = detector(hanging_url)
        # Copies of one alert the passthrough rule takes, each its own alert id: one alert each.
        template = next(a for a in map(orjson.loads, lines)
                        if a.get("status") == "new" and a.get("severity") not in ("informational", None))
        backlog = [InboundEvent(orjson.dumps({**template, "id": f"waiting-{i}"})) for i in range(args.waiting + 1)]
        normalize_events(backlog[:-1], lake=lake, state=state, detector=dead)
        before = count_waiting(state)
        state.outbox_writes = 0
        normalize_events(backlog[-1:], lake=lake, state=state, detector=dead)
        after = count_waiting(state)
        print(f"one batch of one new alert with {before:,} alerts waiting (dead destination): "
              f"{state.outbox_writes} outbox blob writes, {after - before} alert queued")
    listener.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
