"""Cost of the detections on one core: the starter pack's real-time rules per alert, next to the normalize cost of
the same alerts, and the pack's scheduled rules over a lake of them.

    .venv/bin/python bench/bench_detections.py [--count N] [--batch-size N] [--repeat N]

On --count alerts of the simulator's mix (every provider), batch by batch (default 2,000, one Graph page):

- normalize: `shared.land.normalize.normalize_events` with rules off (parse, normalize, Arrow, zstd parquet in memory);
- every column of the batch's Arrow table as Python rows (`Table.to_pylist`), for scale: rules are handed rows
  that convert a column only when a rule reads it (`detections.event.TableRows`);
- each real-time rule of the pack alone, and all of them (`detections.engine.evaluate`) on those rows, the
  columns they read converted inside the timing;
- a rule written as panther-analysis writes them (PANTHER_STYLE below): a helper import (`deep_walk`), `event.udm`
  through the built-in data model, title/dedup/alert_context, on its own, so its cost per alert sits beside the
  normalize cost; then the same rule with Panther's InlineFilters (INLINE_FILTERS), applied before rule() runs;
- detect: `detections.realtime.detect_rows`, the whole real-time step (rows, rules, alert state, rule_matches
  parquet) into an in-memory store, no destination;
- each scheduled rule once over a local lake holding all the alerts (DuckDB, lookback over all of them);
- detection latency (wall clock, --rounds times): new alerts appear in the simulated tenant (Graph over HTTPS), one
  `graphlake pull` run starts once its window covers them, and a real local webhook receives the passthrough
  rule's alerts; the figure is from the start of that run to each alert's arrival. Graph to webhook on the
  production cadence is `bench_freshness.py --detections`.

Times are CPU seconds of this process pinned to one core, best of --repeat (median beside it), except the
latency. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from bench_normalize import PARSE_TIME, MemoryStore, simulator_mix  # noqa: E402

from detections.engine import context_of, evaluate  # noqa: E402
from detections.event import TableRows  # noqa: E402
from detections.loader import RULE, SCHEDULED_RULE, load_rules  # noqa: E402
from detections.realtime import Detector, build_detector, detect_rows  # noqa: E402
from detections.scheduled import run_query  # noqa: E402
from normalizers.core import canonical  # noqa: E402
from normalizers.names import TABLE  # noqa: E402
from shared.land.normalize import ALERTS, InboundEvent, NormalizeResult, normalize_events  # noqa: E402


# A rule in panther-analysis's layout: helpers, udm (the pack's data model for Graph alerts), dynamic fields.
PANTHER_STYLE_PY = """\
from detections.helpers import deep_walk


def _upns(event):
    return deep_walk(event, "evidence", "userAccount", "userPrincipalName", default=[])


def rule(event):
    if event.get("Severity") == "informational":
        return False
    return event.udm("source_ip") is not None or bool(event.udm("actor_user"))


def title(event):
    return f"{event.udm('actor_user') or 'someone'} from {event.udm('source_ip') or 'somewhere'}: {event.get('title')}"


def dedup(event):
    return event.udm("actor_user") or event.get("id")


def alert_context(event):
    return {"user": event.udm("actor_user"), "ip": event.udm("source_ip"), "upns": _upns(event),
            "provider": event.udm("alert_provider"), "ips": event.get("p_any_ip_addresses")}
"""
# The same rule's tuning as a Panther user writes it: InlineFilters (Panther's YAML match expressions), applied by
# the loader before rule() runs: a severity denylist, open alerts or confirmed ones, and providers allowed by prefix.
INLINE_FILTERS = """\
InlineFilters:
  - KeyPath: severity
    Condition: IsNotIn
    Values: [informational, unknownFutureValue]
  - Any:
      - KeyPath: status
        Condition: DoesNotEqual
        Value: resolved
      - KeyPath: classification
        Condition: Equals
        Value: truePositive
  - KeyPath: serviceSource
    Condition: IStartsWith
    Value: microsoft
"""
PANTHER_STYLE_YML = """\
AnalysisType: rule
Filename: panther_style.py
RuleID: Bench.PantherStyle
Enabled: true
LogTypes: [MicrosoftGraph.SecurityAlertV2]
Severity: Medium
SummaryAttributes: [p_any_ip_addresses, serviceSource]
"""


def panther_style_rules(folder: Path, inline_filters: str = ""):
    (folder / "panther_style.py").write_text(PANTHER_STYLE_PY)
    (folder / "panther_style.yml").write_text(PANTHER_STYLE_YML + inline_filters)
    rule_set = load_rules(folder, with_pack=False)
    if rule_set.refused:
        raise SystemExit(f"bench rule refused: {rule_set.refused[0]}")
    return rule_set


def timed(work, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        canonical.cache_clear()
        started = time.process_time()
        work()
        runs.append(time.process_time() - started)
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="pull runs measured for the latency")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    lines = simulator_mix(args.count)
    batches = [lines[i:i + args.batch_size] for i in range(0, len(lines), args.batch_size)]
    tables = [ALERTS.tables(ALERTS, [InboundEvent(body=b) for b in batch], MemoryStore(), PARSE_TIME,
                            NormalizeResult())[TABLE] for batch in batches]
    rule_set = load_rules()
    realtime = rule_set.enabled(RULE)
    detector = Detector(rule_set, ())
    count = len(lines)

    def normalize() -> None:
        for batch in batches:  # no detector: the rules are off
            normalize_events([InboundEvent(body=b) for b in batch], lake=MemoryStore(), state=MemoryStore(),
                             parse_time=PARSE_TIME)

    results: list[tuple[str, float, float]] = [("normalize (rules off)", *timed(normalize, args.repeat))]
    results.append(("every column as Python rows (Table.to_pylist)",
                    *timed(lambda: [t.to_pylist() for t in tables], args.repeat)))
    matches = {}
    context = context_of(rule_set)
    for rule in realtime:
        results.append((f"  rule {rule.rule_id}", *timed(
            lambda r=rule: [evaluate([r], TableRows(t), context) for t in tables], args.repeat)))
        matches[rule.rule_id] = sum(len(evaluate([rule], TableRows(t), context).matches) for t in tables)
    results.append(("all real-time rules (evaluate, columns read on demand)", *timed(
        lambda: [evaluate(realtime, TableRows(t), context) for t in tables], args.repeat)))
    for label, filters in (("helpers + udm", ""), ("helpers + udm + inline filters", INLINE_FILTERS)):
        with tempfile.TemporaryDirectory(prefix="graphlake-bench-rules-") as folder:
            style_set = panther_style_rules(Path(folder), filters)
            style, style_context = style_set.enabled(RULE), context_of(style_set)
            assert (style[0].inline_filter is not None) == bool(filters)  # the figure measures what it names
            results.append((f"  Panther-style rule ({label})", *timed(
                lambda: [evaluate(style, TableRows(t), style_context) for t in tables], args.repeat)))
            matches[f"Bench.PantherStyle ({label})"] = sum(
                len(evaluate(style, TableRows(t), style_context).matches) for t in tables)

    def detect() -> None:
        state, lake = MemoryStore(), MemoryStore()
        for table in tables:
            detect_rows(detector, TableRows(table), lake=lake, state=state, now=PARSE_TIME)

    results.append(("detect (rows, rules, alert state, rule_matches)", *timed(detect, args.repeat)))

    print(f"{count:,} alerts of the simulator's mix, batches of {args.batch_size}, best (median) of {args.repeat}, "
          "one core")
    base = results[0][1]
    for name, best, median in results:
        print(f"  {name:56s} {best / count * 1e6:8.1f} us/alert ({median / count * 1e6:8.1f})  "
              f"{best / base:6.1%} of normalize")
    print("  matches: " + ", ".join(f"{rule_id} {n:,}" for rule_id, n in matches.items()))

    from shared.read.query import connect
    from shared.core.storage import LocalStore

    with tempfile.TemporaryDirectory(prefix="graphlake-bench-") as work:
        for batch in batches:
            normalize_events([InboundEvent(body=b) for b in batch], lake=LocalStore(work), state=MemoryStore(),
                             parse_time=PARSE_TIME)
        connection = connect(work)
        until = datetime.now(UTC) + timedelta(days=1)
        since = until - timedelta(days=30)
        print(f"scheduled rules over a local lake of the {count:,} alerts, the last 30 days, best of {args.repeat}:")
        for rule in rule_set.enabled(SCHEDULED_RULE):
            found: list = []
            best, median = timed(lambda r=rule: found.append(len(run_query(r, connection, since, until))),
                                 args.repeat)
            print(f"  {rule.rule_id:56s} {best * 1000:8.1f} ms ({median * 1000:8.1f})  {found[0]:,} rows")
    latency(args.rounds)


def latency(rounds: int) -> None:
    import asyncio
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from shared.land.local_sink import InProcessSink
    from shared.pull.run import pull_all
    from shared.core.settings import load_settings
    from shared.core.storage import LocalStore
    from simulator.server import GraphSimulator
    from simulator.tenant import Tenant

    arrivals: dict[str, float] = {}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            alert = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrivals[alert["events"][0]["id"]] = time.monotonic()
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sim = GraphSimulator(Tenant(seed=5, alerts=200, days=0.5)).start()
    delay = 1
    try:
        with tempfile.TemporaryDirectory(prefix="graphlake-latency-") as work:
            os.environ.update({**sim.environment(), "STATE_URL": f"{work}/state", "LAKE_URL": f"{work}/lake",
                               "PULL_DELAY_SECONDS": str(delay), "PULL_OVERLAP_SECONDS": "30",
                               "PULL_LOOKBACK_DAYS": "1", "RULES_ENABLED": "true", "ALERT_DESTINATIONS": json.dumps(
                                   [{"type": "webhook", "url": f"http://127.0.0.1:{server.server_address[1]}/"}])})
            settings = load_settings()
            state, lake = LocalStore(f"{work}/state"), LocalStore(f"{work}/lake")
            detector = build_detector(settings)

            def pull_once() -> float:
                sink = InProcessSink(lake, state, detector)
                started = time.monotonic()
                try:
                    asyncio.run(pull_all(settings, state, sink))
                finally:
                    sink.close()
                return started

            time.sleep(delay + 1.1)
            pull_once()  # the backlog
            seen = set(arrivals)
            figures = []
            for _ in range(rounds):
                sim.tenant.mutate(new_alerts=5)
                time.sleep(delay + 1.1)  # the window of the next run ends PULL_DELAY_SECONDS before now
                started = pull_once()
                figures += [arrivals[a] - started for a in set(arrivals) - seen]
                seen = set(arrivals)
    finally:
        sim.stop()
        server.shutdown()
    if figures:
        print(f"detection latency, pull run start to webhook, {len(figures)} alerts over {rounds} runs: median "
              f"{statistics.median(figures) * 1000:.0f} ms, max {max(figures) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
