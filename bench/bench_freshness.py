"""Freshness: for every alert version, seconds from "visible in Graph" to "queryable in the lake".

A live simulated tenant (the simulator over HTTP, the real msgraph-sdk) keeps creating and updating alerts, most
visible within seconds of their lastUpdateDateTime and a tail up to an hour late. The pipeline runs on its
production settings (shared/core/settings.py defaults) and cadence:

- pull_alerts on PULL_SCHEDULE and reconcile_alerts on RECONCILE_SCHEDULE, each fired by this bench's scheduler at
  the NCRONTAB occurrences (croniter, seconds first like the Functions host), one run at a time like the host's
  singleton timers;
- the Event Hub between them as host.json's `extensions.eventHubs` makes the trigger behave: events queue per
  partition (partition key hashed over the Bicep's partition count); a batch is delivered once
  minEventBatchSize events wait, or when the oldest has waited maxWaitTime (only when minEventBatchSize > 1,
  as the extension does), at most maxEventBatchSize events; each delivery runs the normalizer into the lake.

A version is queryable once the normalizer wrote its parquet file. After `--minutes` of alerts the pipeline keeps
running on its cadence until every version still current landed (at most `--drain` seconds), then
`graphlake audit` counts the versions Graph holds that the lake lacks, late ones never caught included.

With `--detections` the normalizer runs the starter pack's real-time rules (RULES_ENABLED) and sends their alerts
to a webhook destination, a real HTTP server on 127.0.0.1 in this process; for every alert it receives about an
alert version made during the run, the figure is from Graph showing the version the rules first saw to the POST
arriving. The passthrough rule fires on the first landed version of each new alert that is not informational.

    python bench/bench_freshness.py --minutes 5 [--detections]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import defaultdict, deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from croniter import croniter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.eventhub import EventDataBatch  # noqa: E402

from shared.land.local_sink import EVENT_HUBS_MAX_BATCH_BYTES  # noqa: E402
from shared.land.normalize import InboundEvent, normalize_events  # noqa: E402
from simulator.lateness import Lateness  # noqa: E402
from simulator.server import GraphSimulator  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402
from simulator.timefmt import now_ticks  # noqa: E402

# The simulated tenant: a busy one for its size, so a few minutes hold a few hundred versions.
NEW_PER_MINUTE = 20.0
UPDATES_PER_MINUTE = 20.0
LATENESS = Lateness(typical_seconds=5.0, tail_share=0.1, tail_max_seconds=3600.0)


def timespan_seconds(text: str) -> float:
    """A .NET TimeSpan as host.json writes it (hh:mm:ss[.fff] or d.hh:mm:ss)."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", text.strip())
    if not match:
        raise ValueError(f"not a TimeSpan: {text!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def bicep_partition_count() -> int:
    match = re.search(r"param eventHubPartitionCount int = (\d+)", (ROOT / "infra" / "main.bicep").read_text())
    return int(match.group(1)) if match else 4


class TriggerBatchingSink:
    """Event Hubs and the Functions trigger in one: per-partition queues delivered with host.json's batching."""

    def __init__(self, lake, state, host: dict, partitions: int, landed: dict, stop: threading.Event,
                 detector=None) -> None:
        self._detector = detector
        hubs = host["extensions"]["eventHubs"]
        self.max_batch = int(hubs.get("maxEventBatchSize", 100))
        self.min_batch = int(hubs.get("minEventBatchSize", 1))
        self.max_wait = timespan_seconds(hubs.get("maxWaitTime", "00:01:00"))
        self._lake, self._state, self._partitions = lake, state, partitions
        self._queues: dict[int, deque[tuple[float, InboundEvent]]] = defaultdict(deque)
        self._cond = threading.Condition()
        self._landed, self._stop = landed, stop
        self.deliveries = 0
        self.files = 0
        self._thread = threading.Thread(target=self._deliver, name="eventhub-trigger", daemon=True)
        self._thread.start()

    def create_batch(self, hub: str, partition_key: str) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=EVENT_HUBS_MAX_BATCH_BYTES, partition_key=partition_key)

    def send(self, hub: str, batch: EventDataBatch) -> None:
        key = batch._partition_key or ""  # noqa: SLF001
        partition = zlib.crc32(key.encode()) % self._partitions
        now = time.time()
        with self._cond:
            self._queues[partition].extend(
                (now, InboundEvent(body=b"".join(e.body), properties=dict(e.properties or {}),
                                   metadata={"hub": hub, "partition": str(partition)}))
                for e in batch._internal_events)  # noqa: SLF001
            self._cond.notify()

    def flush(self) -> None:
        # Accepted by the hub is durable: the pull may advance its watermark.
        pass

    def close(self) -> None:
        pass

    def _due(self, now: float) -> tuple[int | None, float]:
        """The partition with a batch to deliver now, else how long until one is due."""
        wait = 1.0
        for partition, queue in self._queues.items():
            if not queue:
                continue
            if self.min_batch <= 1 or len(queue) >= self.min_batch:
                return partition, 0.0
            left = queue[0][0] + self.max_wait - now
            if left <= 0:
                return partition, 0.0
            wait = min(wait, left)
        return None, wait

    def _deliver(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                partition, wait = self._due(time.time())
                if partition is None:
                    self._cond.wait(wait)
                    continue
                queue = self._queues[partition]
                batch = [queue.popleft()[1] for _ in range(min(self.max_batch, len(queue)))]
            result = normalize_events(batch, lake=self._lake, state=self._state, detector=self._detector)
            done = time.time()
            self.deliveries += 1
            self.files += len(result.files)
            for event in batch:
                key = (event.properties.get("alert_id"), event.properties.get("last_update"))
                self._landed.setdefault(key, done)


class Timer(threading.Thread):
    """A timer trigger: `job` at each NCRONTAB occurrence, the next one counted from when the run ended."""

    def __init__(self, name: str, schedule: str, job, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.schedule, self.job, self.stop, self.runs, self.errors = schedule, job, stop, 0, []

    def run(self) -> None:
        while True:
            due = croniter(self.schedule, datetime.now(UTC), second_at_beginning=True).get_next(datetime)
            if self.stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
                return
            try:
                self.job()
            except Exception as exc:  # noqa: BLE001 - a failed run is reported; the next tick runs again, as in Azure
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.runs += 1


def live_tenant(tenant: Tenant, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        tenant.advance_to(now_ticks(), new_per_minute=NEW_PER_MINUTE, updates_per_minute=UPDATES_PER_MINUTE,
                          lateness=LATENESS)


class WebhookReceiver:
    """A webhook destination on 127.0.0.1: when each alert's POST arrived, by rule and the alert id it is about."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, str, float]] = []  # (rule id, Graph alert id, arrival)
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                alert = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                arrived = time.time()
                arrivals.extend((alert["rule_id"], event["id"], arrived) for event in alert["events"][:1])
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def detection_delays(arrivals: list[tuple[str, str, float]], tenant: Tenant, landed: dict,
                     started: float) -> tuple[list[float], dict[str, int]]:
    """Seconds from Graph showing the version the rules first saw to the webhook receiving its alert, for alerts
    about versions made during the run; and how many such alerts each rule sent."""
    visible = {(v.alert_id, v.last_update): v.visible_at.timestamp() for v in tenant.versions()}
    first_landed: dict[str, tuple[float, float]] = {}
    for (alert_id, last_update), at in landed.items():
        seen = visible.get((alert_id, last_update))
        if seen is not None and (alert_id not in first_landed or (at, seen) < first_landed[alert_id]):
            first_landed[alert_id] = (at, seen)
    delays, per_rule = [], defaultdict(int)
    for rule_id, alert_id, arrived in arrivals:
        if alert_id in first_landed and first_landed[alert_id][1] >= started:
            delays.append(arrived - first_landed[alert_id][1])
            per_rule[rule_id] += 1
    return delays, dict(per_rule)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the tenant keeps changing")
    parser.add_argument("--drain", type=float, default=120.0,
                        help="seconds the pipeline may run on after that for versions still on their way")
    parser.add_argument("--host-json", type=Path, default=ROOT / "host.json",
                        help="the Functions host.json whose Event Hubs batching the trigger applies")
    parser.add_argument("--detections", action="store_true",
                        help="run the starter pack's real-time rules with a local webhook destination and measure "
                             "from Graph showing an alert to the webhook receiving its alert")
    args = parser.parse_args()

    from shared.pull.run import pull_all
    from shared.ops.reconcile import reconcile_all
    from shared.core.settings import load_settings
    from shared.core.storage import open_store

    host = json.loads(args.host_json.read_text())
    tenant = Tenant(seed=11, alerts=300, days=1.0)
    receiver = WebhookReceiver() if args.detections else None
    with tempfile.TemporaryDirectory() as work, GraphSimulator(tenant) as sim:
        # Settings set in the environment (PULL_DELAY_SECONDS=120, ...) are honoured, to measure what each costs.
        env = sim.environment() | {"STATE_URL": str(Path(work) / "state"), "LAKE_URL": str(Path(work) / "lake"),
                                    "EventHubConnection__fullyQualifiedNamespace": ""}
        if receiver is not None:
            env |= {"RULES_ENABLED": "true", "ALERT_DESTINATIONS": json.dumps(
                [{"type": "webhook", "name": "bench", "url": receiver.url}])}
        os.environ.update(env)
        settings = load_settings()
        state, lake = open_store(settings.state_url), open_store(settings.lake_url)
        stop_all, landed = threading.Event(), {}
        from detections.realtime import build_detector

        sink = TriggerBatchingSink(lake, state, host, bicep_partition_count(), landed, stop_all,
                                   build_detector(settings))

        # The first run reads the backlog: done before the clock starts, as in a deployment that has been running.
        asyncio.run(pull_all(settings, state, sink))
        timers = [Timer("pull_alerts", settings.pull_schedule,
                        lambda: asyncio.run(pull_all(settings, state, sink)), stop_all),
                  Timer("reconcile_alerts", settings.reconcile_schedule,
                        lambda: asyncio.run(reconcile_all(settings, state, lake, sink)), stop_all)]
        calls_before, started = sim.calls, time.time()
        stop_tenant = threading.Event()
        changer = threading.Thread(target=live_tenant, args=(tenant, stop_tenant), daemon=True)
        for thread in [*timers, changer]:
            thread.start()
        print(f"pull {settings.pull_schedule!r} (delay {settings.pull_delay_seconds} s, overlap "
              f"{settings.pull_overlap_seconds} s), reconcile {settings.reconcile_schedule!r}; trigger batches "
              f"{sink.min_batch}..{sink.max_batch}, maxWaitTime {sink.max_wait:g} s; tenant "
              f"{NEW_PER_MINUTE:g} new + {UPDATES_PER_MINUTE:g} updates a minute, {LATENESS}", flush=True)
        time.sleep(args.minutes * 60)
        stop_tenant.set()
        changer.join()

        def wanted() -> dict[tuple[str, str], float]:
            """Versions made during the run that were current long enough for a pull to see: the latest of each
            alert, and earlier ones only if they landed (one superseded before any pull read it was never
            readable by anyone)."""
            out, latest, every = {}, {}, tenant.versions()
            for v in every:
                latest[v.alert_id] = v
            for v in every:
                key = (v.alert_id, v.last_update)
                if v.visible_at.timestamp() < started:
                    continue
                if latest[v.alert_id] is v or key in landed:
                    out[key] = v.visible_at.timestamp()
            return out

        drain_until = time.time() + args.drain
        while time.time() < drain_until and any(key not in landed for key in wanted()):
            time.sleep(1.0)
        stop_all.set()
        for timer in timers:
            timer.join(timeout=600)
        elapsed_min = (time.time() - started) / 60
        calls = sim.calls - calls_before

        versions = wanted()
        delays = [landed[key] - seen for key, seen in versions.items() if key in landed]
        not_landed = len(versions) - len(delays)
        audit = subprocess.run(
            [str(Path(sys.executable).parent / "graphlake"), "audit", "--since", "3h", "--format", "json"],
            capture_output=True, text=True, env=os.environ | env, check=False)
        reports = [json.loads(line) for line in audit.stdout.splitlines() if line.startswith("{")]
        if not reports:
            sys.exit(f"graphlake audit gave no report (exit {audit.returncode}): {audit.stderr.strip()}")
        missing = sum(len([f for f in r.get("findings", []) if f.get("kind") == "missing"]) for r in reports)
        behind = sum(len([f for f in r.get("findings", []) if f.get("kind") == "behind"]) for r in reports)

        late = [lateness(text, seen) for (_, text), seen in versions.items()]
        beyond = sum(1 for seconds in late if seconds > settings.pull_overlap_seconds)
        print(f"{len(versions)} versions made over {args.minutes:g} min ({sum(1 for s in late if s > 60)} shown more "
              f"than a minute late, at most {max(late, default=0):.0f} s; {beyond} later than the pull's overlap), "
              f"{len(delays)} landed, {not_landed} not landed within the drain; {timers[0].runs} pull runs, "
              f"{timers[1].runs} reconcile runs, {sink.deliveries} trigger deliveries, {sink.files} parquet files")
        for timer in timers:
            for error in timer.errors[:3]:
                print(f"  {timer.name} failed: {error}")
        if behind:
            print(f"audit: {behind} alerts behind (an older version only)")
        if not delays:
            sys.exit("no version landed")
        print(f"p50 {statistics.median(delays):.1f} s, p95 {percentile(delays, 0.95):.1f} s, "
              f"max {max(delays):.1f} s, missing {missing}; Graph calls {calls / elapsed_min:.1f} a minute "
              f"({calls / elapsed_min / 150:.0%} of the 150 budget)")
        if receiver is not None:
            receiver.close()
            hooks, per_rule = detection_delays(receiver.arrivals, tenant, landed, started)
            rules = ", ".join(f"{rule_id} {count}" for rule_id, count in sorted(per_rule.items()))
            if not hooks:
                sys.exit(f"detections: the webhook received no alert about a version made during the run "
                         f"({len(receiver.arrivals)} in all)")
            print(f"detections: p50 {statistics.median(hooks):.1f} s, p95 {percentile(hooks, 0.95):.1f} s, "
                  f"max {max(hooks):.1f} s over {len(hooks)} alerts ({rules}; "
                  f"{len(receiver.arrivals) - len(hooks)} more about the backlog)")


def lateness(last_update: str, visible: float) -> float:
    """Seconds between a version's lastUpdateDateTime and Graph showing it."""
    return visible - datetime.fromisoformat(last_update.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    main()
