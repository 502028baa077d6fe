"""The randomized fault suite of issue 10: everything at once, for many seeds.

Each seed runs a small simulated tenant through rounds of: new alerts and updates (a long tail of them shown up to
two hours late), then chaos with every fault on (429s, 5xx, dropped nextLinks, pages in unstable order, alerts
updated between the page requests of a query, a pull SIGKILLed at a random point, two pulls at once, pulls on a
clock hours ahead of Graph's, the normalizer SIGKILLed at a random point), then a settling step that is not killed:
a pull, the normalizer (through a storage outage: the state store refuses the in-flight mark's writes for longer
than NORMALIZE_MAX_ATTEMPTS deliveries, which it must retry, never give up), the reconciliation and the normalizer
again. In the last round the normalizer is down (a consumer that stopped): the pulls and two reconciliations send
into the spool and nothing lands, and status must say so (FAILING, sent but not landed) before it resumes. It ends
with the audit reporting 0 missing and the lake holding every version exactly once.

"Every version" means: every version that was current while an unkilled pull and reconciliation ran, i.e. current
at the end of some round's settling step (the tenant does not change during it). That includes the latest version
of every alert. A version that was current only while killed runs read it (updated again between the page requests
of a killed pull, or shown late and updated again before the reconciliation came) was never visible to a run that
completed; it may be in the lake or not, but it must never be there twice, and nothing else may be.

The pipeline is the Azure one: pull processes send to a spool standing in for Event Hubs (durable before the
watermark moves, at-least-once to the consumer), and a separate normalizer process consumes the spool and deletes
a file only after its rows landed, as a checkpoint. Processes are forked, so they start in milliseconds, and each
kill is the process SIGKILLing itself at the N-th send or write the seed chose: the kill points are deterministic,
not a race with a timer. Time is the suite's own clock, running ahead of the wall clock, passed to every run, so
nothing sleeps waiting for a window to close.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import zlib
from datetime import timedelta

import orjson
import pytest
from azure.eventhub import EventDataBatch

from normalizers.core import row_id
from shared.ops.audit import audit_all
from shared.land.local_sink import EVENT_HUBS_MAX_BATCH_BYTES
from shared.land.normalize import InboundEvent, normalize_events
from shared.land.retries import Batch, is_transient, normalize_delivery
from shared.ops.status import FAILING, OK, check, worst
from shared.pull.graph import Backoff
from shared.pull.run import pull_all, raise_for_failures
from shared.read.query import connect
from shared.ops.reconcile import reconcile_all
from shared.core import health
from shared.core.settings import load_settings
from shared.core.storage import open_store
from simulator.faults import Faults
from simulator.lateness import Lateness
from simulator.server import GraphSimulator
from simulator.tenant import Tenant
from tests.storage_faults import RefusedWrites, WriteOutage

SEEDS = range(20)
ROUNDS = 2
ROUND_SECONDS = 60  # the suite's clock between rounds; more than the overlap, so a tail of late versions is late
BURST, BURST_LEAD_SECONDS = 15, 10
LATENESS = Lateness(typical_seconds=5.0, tail_share=0.4, tail_max_seconds=7200.0)
HOURS_LATE = Lateness(typical_seconds=3600.0, tail_share=1.0, tail_max_seconds=7200.0)  # late whatever the draw
SPOOL = "spool/"
DELIVERY_FILES = 8
# Chaos pulls page by 10, less than the burst. A settling pull pages by 100: under unstable order a read is shown
# complete only by one response, and the burst and the updates between the chaos pulls' page requests each share a
# second, which no cut can part.
SETTLING_PAGE_SIZE = "100"
FORK = multiprocessing.get_context("fork")
# Summed over the seeds in this process: each seed's own share of these depends on how its processes interleave.
# Under xdist this module runs whole on one worker (ONE_WORKER_MODULES in tests/conftest.py).
FIRED = {"throttled": 0, "errors": 0, "dropped_next_links": 0, "page_updates": 0, "clock_ahead_runs": 0,
         "watermark_repairs": 0, "watermarks_held_at_graphs_clock": 0, "storage_outage": 0, "consumer_down": 0}
SEEDS_RUN: set[int] = set()
pytestmark = pytest.mark.fault_suite
# A budget of 8 calls per 0.2 s and 429s with "Retry-After: 0", which sends the client to its own backoff: one
# capped a little above the budget's window, so a throttled call gets through on a retry within a fraction of a
# second. The real one-second Retry-After is tests/pull/test_pull_faults.py's.
BACKOFF = Backoff(status_factor=0.02, status_max=0.25, transport_multiplier=0.02, transport_max=0.25)
# The normalizer's deliveries are one partition's; its record holds the in-flight mark the storage outage refuses.
PARTITION = "spool"
MARK = f"health/normalize/{PARTITION}.json"
MAX_ATTEMPTS = "2"  # a kill of the chaos normalizer counts one; a second count would give a healthy batch up
HOST_RETRIES = 20  # the host retries forever; a delivery still failing after this many is a hang, not an outage
FIRED_PREFIX = "fired/"  # in the spool store: what a forked process tells the suite it saw
# The last round's normalizer is down: the first round has the backlog the kills need.
DOWN_ROUND = ROUNDS - 1


def faults(seed: int, page_updates: int) -> Faults:
    # Every other seed's Graph answers without a Date header (a proxy strips it), so a run on a clock ahead leaves
    # its watermark ahead, which the next run repairs; with the Date, the watermark stops at Graph's time.
    return Faults(rate_limit_per_window=8, rate_window_seconds=0.2, retry_after_seconds=0, error_rate=0.01,
                  drop_next_link_rate=0.3, page_updates=page_updates, unstable_order=True, clock_ahead_rate=0.25,
                  clock_ahead_seconds=7200, strip_date_header=seed % 2 == 1, seed=seed)


# --- The Event Hub stand-in and the kill switch --------------------------------------------------------------------

class SpoolSink:
    """Event Hubs' contract for the pull: a batch is durable when send returns. One file per batch."""

    def __init__(self, spool, wire: Tripwire | None = None) -> None:
        self._spool = spool
        self._wire = wire
        self._sent = 0

    def create_batch(self, hub: str, partition_key: str) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=EVENT_HUBS_MAX_BATCH_BYTES, partition_key=partition_key)

    def send(self, hub: str, batch: EventDataBatch) -> None:
        if self._wire:
            self._wire.tick()
        self._sent += 1
        events = [{"body": b"".join(e.body).decode(), "properties": dict(e.properties or {})}
                  for e in batch._internal_events]  # noqa: SLF001 - the SDK exposes no public iterator over a batch
        self._spool.write(f"{SPOOL}{os.getpid()}-{self._sent:06d}.json", orjson.dumps(events))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Tripwire:
    """SIGKILLs this process at the `at`-th tick: a kill at a point the seed chose, not at a time."""

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


class TrippingStore:
    """A store whose writes and deletes tick the wire, before or after the operation."""

    def __init__(self, store, wire: Tripwire, before: bool) -> None:
        self._store, self._wire, self._before = store, wire, before

    def read(self, name):
        return self._store.read(name)

    def list(self, prefix=""):
        return self._store.list(prefix)

    def write(self, name, data, **conditions):
        if self._before:
            self._wire.tick()
        etag = self._store.write(name, data, **conditions)
        if not self._before:
            self._wire.tick()
        return etag

    def delete(self, name):
        if self._before:
            self._wire.tick()
        self._store.delete(name)
        if not self._before:
            self._wire.tick()


# --- The processes -------------------------------------------------------------------------------------------------

def _pull(env: dict, now, kill_at: int | None, before: bool, settling: bool = False) -> None:
    """A pull run; while settling it must end without error and with every slice confirmed (exit 1 otherwise)."""
    settings = load_settings(env)
    wire = Tripwire(kill_at)
    state = TrippingStore(open_store(settings.state_url), wire, before)
    summaries = asyncio.run(pull_all(settings, state, SpoolSink(open_store(env["SPOOL_URL"]), wire), now=now,
                                     backoff=BACKOFF))
    if settling:
        raise_for_failures(summaries)
        unconfirmed = [s.to_json() for s in summaries if s.unconfirmed_slices]
        assert not unconfirmed, "\n".join(unconfirmed)


def _normalize(env: dict, kill_at: int | None, before: bool, now=None, outage: tuple[int, int] | None = None) -> None:
    """Consumes the spool a delivery of up to DELIVERY_FILES files at a time, through the delivery retry policy:
    normalizes it, then deletes its files (the checkpoint). Killed in between, the delivery comes again, as Event
    Hubs redelivers a batch whose checkpoint was not written. `outage` (first, count): the state store refuses
    writes number first to first + count - 1 of the in-flight mark; each delivery that raises is retried, as the
    host's retry policy does, and must not be given up."""
    wire = Tripwire(kill_at)
    spool = TrippingStore(open_store(env["SPOOL_URL"]), wire, before)
    lake = TrippingStore(open_store(env["LAKE_URL"]), wire, before)
    state = open_store(env["STATE_URL"])
    if outage:
        first, count = outage
        state = RefusedWrites(state, WriteOutage(env["STATE_URL"], MARK), lambda n: first <= n < first + count)
    names = list(spool.list(SPOOL))
    for start in range(0, len(names), DELIVERY_FILES):
        delivery = names[start:start + DELIVERY_FILES]
        events = [InboundEvent(body=e["body"].encode(), properties=e["properties"], metadata={"spool": name})
                  for name in delivery for e in orjson.loads(spool.read(name).data)]
        # The same on every delivery of these files, as a batch's first sequence number is.
        batch = Batch(PARTITION, zlib.crc32(delivery[0].encode()))
        for _ in range(HOST_RETRIES):
            try:
                result = normalize_delivery(events, batch, lake=lake, state=state,
                                            max_attempts=int(env["NORMALIZE_MAX_ATTEMPTS"]), now=now)
                break
            except Exception as exc:
                assert outage and is_transient(exc), f"a delivery failed outside the storage outage: {exc!r}"
        else:
            raise AssertionError(f"a delivery still failed after {HOST_RETRIES} retries")
        assert not result.quarantined, f"quarantined {result.quarantined}"
        for name in delivery:
            spool.delete(name)
    if outage:
        open_store(env["SPOOL_URL"]).write(f"{FIRED_PREFIX}storage_outage-{os.getpid()}.json",
                                           orjson.dumps(state.refused))


def reconcile(settings, state, lake, spool, now):
    """The reconciliation, re-sending into the spool; it must read Graph completely."""
    [report] = asyncio.run(reconcile_all(settings, state, lake, SpoolSink(spool), now=now, backoff=BACKOFF))
    assert report.error is None and report.confirmed, report.to_json()
    return report


def run_processes(*jobs: tuple) -> list[int]:
    """Forks one process per (function, args...), all at once; their exit codes (-9: SIGKILLed)."""
    procs = [FORK.Process(target=job[0], args=job[1:]) for job in jobs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode is not None, "a process hung"
    return [proc.exitcode for proc in procs]


# --- The suite -----------------------------------------------------------------------------------------------------

@pytest.fixture
def tenant_env(tmp_path_factory, monkeypatch):
    sims = []

    def make(seed: int):
        rng = random.Random(seed)
        tenant = Tenant(seed=seed, alerts=rng.randint(20, 45), days=0.3)
        sim = GraphSimulator(tenant, faults(seed, page_updates=1)).start()
        sims.append(sim)
        # Load the normalizer's lazily imported modules here, once, rather than in every forked process.
        scratch = open_store(str(tmp_path_factory.mktemp("warm")))
        normalize_events([InboundEvent(orjson.dumps(tenant.query(top=1).alerts[0]))], lake=scratch, state=scratch)
        env = {**sim.environment(), **{name: str(tmp_path_factory.mktemp(name.lower()))
                                      for name in ("STATE_URL", "LAKE_URL", "SPOOL_URL")},
               "PULL_DELAY_SECONDS": "1", "PULL_OVERLAP_SECONDS": "30", "PULL_LOOKBACK_DAYS": "0.4",
               "PULL_SLICE_MINUTES": "360", "PULL_PAGE_SIZE": "10", "GRAPH_MAX_REQUESTS_PER_MINUTE": "150",
               "RECONCILE_MAX_REQUESTS_PER_MINUTE": "150", "RECONCILE_LOOKBACK_HOURS": "24",
               "NORMALIZE_MAX_ATTEMPTS": MAX_ATTEMPTS}
        for name in ("GRAPH_CLIENT_SECRET", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.setenv(name, env[name])
        return sim, env, rng

    yield make
    for sim in sims:
        sim.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_everything_at_once_ends_complete_and_exactly_once(tenant_env, seed):
    sim, env, rng = tenant_env(seed)
    tenant = sim.tenant
    settings = load_settings(env)
    state, lake = open_store(env["STATE_URL"]), open_store(env["LAKE_URL"])
    # The suite's clock runs an hour ahead of the wall clock, so the simulator's own updates between page
    # requests are stamped by it too.
    clock = tenant.now + timedelta(hours=1)
    expected: set[str] = set()
    codes: list[int] = []
    late_found = 0
    repairs = holds = False

    def repaired() -> bool:
        """Whether the pull that wrote the source's health record last found the watermark ahead and repaired it."""
        record = health.load(state, "pull", tenant.tenant_id) or {}
        return bool(record.get("watermark_ahead_seconds"))

    def held() -> bool:
        """Whether the pull that wrote the record ran on a clock ahead of Graph's Date (and stopped its watermark
        there)."""
        record = health.load(state, "pull", tenant.tenant_id) or {}
        return (record.get("clock_skew_seconds") or 0) > settings.pull_overlap_seconds

    spool = open_store(env["SPOOL_URL"])
    consumer_down = 0
    for round_ in range(ROUNDS):
        down = round_ == DOWN_ROUND
        # A burst of more alerts in one second than a chaos pull's page: the one read the pull cannot cut smaller
        # and must page, where the simulator updates alerts between its page requests.
        clock += timedelta(seconds=ROUND_SECONDS - BURST_LEAD_SECONDS)
        tenant.mutate(now=clock, new_alerts=BURST)
        clock += timedelta(seconds=BURST_LEAD_SECONDS)
        tenant.mutate(now=clock, new_alerts=rng.randint(3, 10), updates=rng.randint(3, 12), lateness=LATENESS)
        tenant.mutate(now=clock, new_alerts=1, updates=1, lateness=HOURS_LATE)
        now = clock + timedelta(seconds=settings.pull_delay_seconds + 1)

        # Chaos: a pull killed at a random point; two pulls at once, each maybe killed; any of them maybe on a clock
        # two hours ahead of Graph's (the watermark it leaves is ahead of every later run's clock); the normalizer
        # killed at a random point (its spool files are delivered again), unless it is down this round.
        codes += run_processes((_pull, env, sim.pull_clock(now), rng.randint(3, 8), rng.random() < 0.5))
        repairs, holds = repaired() or repairs, held() or holds
        codes += run_processes(*[(_pull, env, sim.pull_clock(now), rng.choice([None, rng.randint(1, 6)]),
                                  rng.random() < 0.5) for _ in range(2)])
        repairs, holds = repaired() or repairs, held() or holds
        if not down:
            codes += run_processes((_normalize, env, rng.randint(1, 3), rng.random() < 0.5, now))
        assert set(codes) <= {0, -signal.SIGKILL}, codes  # killed or done; a run losing the race ends cleanly

        # Settling: nothing killed, the tenant still (no updates between page requests); 429s, 5xx, lost
        # nextLinks and unstable order stay on. The spool is drained before the reconciliation reads the lake.
        sim.set_faults(page_updates=0)
        # The suite's time moves only when the tenant changes: Graph's clock (the Date of its answers, where a pull's
        # watermark stops) is moved on to the settling run's time, as a real Graph's would have moved.
        tenant.mutate(now=now)
        assert run_processes((_pull, {**env, "PULL_PAGE_SIZE": SETTLING_PAGE_SIZE}, now, None, False, True)) == [0]
        # Judged at the suite's clock: FAILING when the settling pull had to put back a watermark a run ahead left
        # (it is the one that found it), else OK.
        [pulled] = [f for f in check(state, now, settings.pull_max_lag_seconds) if f.component == "pull"]
        if repaired():
            repairs = True
            assert pulled.state == FAILING and "ahead of the clock; repaired to" in pulled.reason, pulled
        else:
            assert pulled.state == OK, pulled
        if down:
            # Nothing consumes the spool: two reconciliations re-send what is missing, and nothing lands.
            for _ in range(2):
                late_found += reconcile(settings, state, lake, spool, now).late_found
            findings = check(state, now, settings.pull_max_lag_seconds, [tenant.tenant_id], event_hub=True)
            judged = {f.component: f for f in findings}
            assert worst(findings) != OK, findings
            assert judged["reconcile"].state == FAILING and "sent but not landed since" in judged["reconcile"].reason, \
                findings
            consumer_down += 1
        # The normalizer consumes (again), through a storage outage of its in-flight mark longer than its attempts:
        # from its first write (the mark) or its second (the first clearing: the mark stays behind).
        outage = (rng.choice([1, 2]), rng.randint(int(MAX_ATTEMPTS) + 1, int(MAX_ATTEMPTS) + 3))
        assert run_processes((_normalize, env, None, False, now, outage)) == [0]
        late_found += reconcile(settings, state, lake, spool, now).late_found
        assert run_processes((_normalize, env, None, False, now)) == [0]
        if down:
            [judged] = [f for f in check(state, now, settings.pull_max_lag_seconds, [tenant.tenant_id],
                                         event_hub=True) if f.component == "reconcile"]
            assert judged.state != FAILING, judged
        expected |= {row_id(tenant.tenant_id, alert_id, last_update, source) for (alert_id, source), last_update
                     in {(v.alert_id, v.service_source): v.last_update for v in tenant.versions()}.items()}
        sim.set_faults(page_updates=1)

    sim.set_faults(page_updates=0)
    [audit] = asyncio.run(audit_all(settings, state, lake, since=clock - timedelta(days=3), now=now,
                                    backoff=BACKOFF))
    assert (audit.error, audit.confirmed, audit.missing) == (None, True, 0), audit.to_json()
    assert audit.alerts == tenant.alert_count

    connection = connect(env["LAKE_URL"])
    try:
        [(rows, distinct)] = connection.execute(
            "SELECT count(*), count(DISTINCT p_row_id) FROM security_alerts").fetchall()
        landed = {r for (r,) in connection.execute("SELECT p_row_id FROM security_alerts").fetchall()}
    finally:
        # Closed before anything can fail: a DuckDB left open (held by a failure's traceback) while the next seed
        # forks crashes the forked processes.
        connection.con.close()
    ever = {row_id(tenant.tenant_id, v.alert_id, v.last_update, v.service_source) for v in tenant.versions()}
    assert rows == distinct, "a version is in the lake twice after dedup"
    assert not expected - landed, f"{len(expected - landed)} of {len(expected)} versions never reached the lake"
    assert landed <= ever, "the lake holds versions Graph never showed"

    # The faults really fired: the kills landed, versions came late and the reconciliation found them.
    # The first round's backlog always reaches the kills: its first pull has sent at least two batches when it
    # dies (kill at the third send or write or later), and one delivery of two files is three writes and deletes.
    assert codes[0] == codes[3] == -signal.SIGKILL, codes
    assert late_found >= ROUNDS - 1  # the first round has no watermark yet, so nothing is late in it
    # Updates between page requests fire only when a chaos pull pages the burst; a pull on a clock ahead may leave
    # the burst to the settling pull, where they are off, so they are counted over the seeds, not asked of each.
    assert consumer_down == 1
    # Where Graph dates its answers, no run on a clock ahead leaves the watermark ahead.
    assert not (repairs and not sim.faults.strip_date_header), "a watermark passed Graph's Date"
    own = {"consumer_down": consumer_down, "watermark_repairs": int(repairs),  # seeds where a watermark was put back
           "watermarks_held_at_graphs_clock": int(holds),
           "storage_outage": sum(orjson.loads(spool.read(name).data) for name in spool.list(FIRED_PREFIX))}
    for name in FIRED:
        FIRED[name] += own[name] if name in own else getattr(sim.counters, name)
    SEEDS_RUN.add(seed)


def test_the_transport_faults_really_fired_across_the_seeds(request):
    seed_test = test_everything_at_once_ends_complete_and_exactly_once.__name__
    selected = {item.callspec.params["seed"] for item in request.session.items if item.originalname == seed_test}
    if selected != set(SEEDS):
        pytest.skip("sums the faults over every seed: select them all")
    # All selected, so all ran before this test in this process: a seed missing here failed, or ran on another
    # worker, where its faults are not counted.
    assert SEEDS_RUN == set(SEEDS), f"seeds {sorted(set(SEEDS) - SEEDS_RUN)} did not finish in this process"
    assert all(FIRED.values()), FIRED
