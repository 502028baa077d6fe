"""A pull run on a clock ahead of Graph's (issue 18 item 2): its watermark never passes Graph's own time (the Date
header of Graph's answers), so what Graph stamps after the run is read by the next; where Graph's time is not known
(no Date header), the watermark it leaves ahead must not stop the reads of the runs after it; and `graphlake status`
must say what happened rather than OK."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
from click.testing import CliRunner
from kiota_abstractions.headers_collection import HeadersCollection

from normalizers.core import row_id
from shared.cli import main
from shared.core import health
from shared.core.storage import open_store
from shared.land.local_sink import InProcessSink
from shared.ops.status import FAILING, LAGGING, OK, assess
from shared.pull.run import pull_all, raise_for_failures
from shared.pull.graph import GraphTime, graph_time
from shared.pull.watermark import Watermark, WatermarkStore
from simulator.faults import Faults

AHEAD = timedelta(hours=1)
# More than the pipeline's PULL_OVERLAP_SECONDS (30): by this much a watermark at the host's now would pass what
# Graph stamps next.
BEHIND_SECONDS = 120.0


def pull(pipe, now: datetime | None = None):
    settings = pipe.settings()
    state = open_store(settings.state_url)
    sink = InProcessSink(open_store(settings.lake_url), state)
    try:
        summaries = asyncio.run(pull_all(settings, state, sink, now=now))
    finally:
        sink.close()
    raise_for_failures(summaries)
    return summaries[0]


def pull_finding(pipe) -> dict:
    result = CliRunner().invoke(main, ["status", "--format", "json"], env=pipe.env)
    [finding] = [orjson.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return finding


def test_a_host_clock_ahead_of_graphs_never_takes_the_watermark_past_what_graph_stamps_next(make_pipeline):
    pipe = make_pipeline(alerts=20, faults=Faults(tenant_clock_behind_seconds=BEHIND_SECONDS))
    first = pull(pipe)
    assert sorted(pipe.lake_row_ids()) == sorted(pipe.expected_row_ids())
    # The run's clock was ahead of Graph's by the fault's lag (and the time its answer took); its watermark stopped at
    # Graph's time, not its own.
    assert BEHIND_SECONDS <= first.clock_skew_seconds < BEHIND_SECONDS + 5
    assert datetime.fromisoformat(first.watermark_after) == datetime.fromisoformat(first.graph_date)
    assert datetime.fromisoformat(first.watermark_after) < datetime.now(UTC) - timedelta(seconds=BEHIND_SECONDS - 5)

    # Just after that run Graph stamps a new alert and an update, by its own clock: before the host's now minus the
    # overlap, where a watermark at the host's now would start the next window.
    made = pipe.tenant.mutate(now=pipe.sim.graph_now(), new_alerts=1, updates=1)
    second = pull(pipe)
    landed = set(pipe.lake_row_ids())
    assert {row_id(pipe.tenant.tenant_id, v.alert_id, v.last_update_text, pipe.tenant.service_source(v.alert_id))
            for v in made} <= landed
    assert sorted(landed) == sorted(pipe.expected_row_ids())
    assert second.sent == 2
    record = health.load(open_store(pipe.env["STATE_URL"]), "pull", second.source_id)
    assert record["clock_skew_seconds"] == second.clock_skew_seconds >= BEHIND_SECONDS
    assert record["graph_date"] == second.graph_date and record["graph_date_problem"] is None
    # Status is not OK while the host's clock is that far ahead, however well the watermark is kept; within a
    # PULL_MAX_CLOCK_SKEW_SECONDS that allows it, it is.
    finding = pull_finding(pipe)
    assert finding["state"] == FAILING, finding
    assert finding["reason"].startswith(f"the pull's clock is 2m ahead of Graph's (its Date header "
                                        f"{second.graph_date}; limit 60s)"), finding["reason"]
    pipe.env["PULL_MAX_CLOCK_SKEW_SECONDS"] = "600"
    assert pull_finding(pipe)["state"] == OK


def test_without_a_date_header_the_runs_clock_alone_bounds_the_window_and_the_record_says_so(make_pipeline):
    pipe = make_pipeline(alerts=10, faults=Faults(strip_date_header=True))
    summary = pull(pipe)
    record = health.load(open_store(pipe.env["STATE_URL"]), "pull", summary.source_id)
    assert record["graph_date"] is None and record["clock_skew_seconds"] is None
    assert record["graph_date_problem"] == "Graph's answer carried no Date header", record
    assert summary.window.endswith(f"{datetime.fromisoformat(summary.watermark_after).isoformat()})")
    finding = pull_finding(pipe)
    assert finding["state"] == OK, finding
    assert finding["reason"].endswith("clock unchecked against Graph's (Graph's answer carried no Date header)")


def test_after_a_run_on_a_clock_ahead_the_next_runs_read_on_and_status_fails_once(make_pipeline):
    # Behind a proxy that strips Graph's Date header, a run on a clock ahead leaves its watermark ahead.
    pipe = make_pipeline(alerts=30, faults=Faults(strip_date_header=True))
    pipe.sim.set_faults(clock_ahead_rate=1.0, clock_ahead_seconds=AHEAD.total_seconds())
    skewed = pull(pipe, now=pipe.sim.pull_clock(datetime.now(UTC)))
    assert pipe.sim.counters.clock_ahead_runs == 1
    assert datetime.fromisoformat(skewed.watermark_after) > datetime.now(UTC) + AHEAD / 2
    pipe.sim.set_faults(clock_ahead_rate=0.0)

    made = pipe.tenant.mutate(new_alerts=5, updates=5)
    pipe.settle()
    repair = pull(pipe)
    landed = set(pipe.lake_row_ids())
    assert {row_id(pipe.tenant.tenant_id, v.alert_id, v.last_update_text, pipe.tenant.service_source(v.alert_id))
            for v in made} <= landed
    assert sorted(landed) == sorted(pipe.expected_row_ids())
    assert datetime.fromisoformat(repair.watermark_after) <= datetime.now(UTC)
    record = health.load(open_store(pipe.env["STATE_URL"]), "pull", repair.source_id)
    assert AHEAD.total_seconds() - 60 < record["watermark_ahead_seconds"] <= AHEAD.total_seconds()
    assert record["lag_seconds"] >= 0
    finding = pull_finding(pipe)
    assert finding["state"] == FAILING
    assert finding["reason"].startswith("watermark was 59m ahead of the clock") or \
        finding["reason"].startswith("watermark was 60m ahead of the clock"), finding["reason"]
    assert f"repaired to {record['watermark_repaired_to']}" in finding["reason"]

    # The next clean run is OK again.
    pull(pipe)
    assert pull_finding(pipe)["state"] == OK


def test_an_edited_watermark_ahead_is_repaired_to_now_minus_the_overlap(make_pipeline):
    pipe = make_pipeline(alerts=20)
    settings = pipe.settings()
    state = open_store(settings.state_url)
    source = settings.sources()[0]
    now = datetime.now(UTC).replace(microsecond=0)
    overlap = timedelta(seconds=settings.pull_overlap_seconds)
    WatermarkStore(state, source.id).advance(Watermark(None), now + AHEAD, set(), overlap)
    summary = pull(pipe, now=now)
    assert summary.watermark_ahead_seconds == AHEAD.total_seconds()
    assert summary.watermark_repaired_to == (now - overlap).isoformat()
    assert summary.window == f"[{(now - 2 * overlap).isoformat()}, {now.isoformat()})"
    assert WatermarkStore(state, source.id).load().position == now
    assert summary.lag_seconds == 0


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_status_shows_a_watermark_ahead_of_its_clock_as_ahead_and_failing():
    ahead = {("pull", "s"): {"result": "ok", "watermark": (NOW + timedelta(minutes=10)).isoformat(),
                             "unconfirmed_slices": 0, "sent": 0}}
    [finding] = assess(ahead, 0, NOW, 900)
    assert finding.state == FAILING
    assert finding.reason.startswith(f"watermark {(NOW + timedelta(minutes=10)).isoformat()} is 10m ahead of "
                                     "this clock"), finding.reason
    repaired = {("pull", "s"): {"result": "ok", "watermark": (NOW - timedelta(minutes=1)).isoformat(),
                                "watermark_ahead_seconds": 7200.0,
                                "watermark_repaired_to": (NOW - timedelta(hours=1)).isoformat(),
                                "unconfirmed_slices": 0, "sent": 3}}
    [finding] = assess(repaired, 0, NOW, 900)
    assert finding.state == FAILING
    assert finding.reason.startswith(f"watermark was 2h ahead of the clock; repaired to "
                                     f"{(NOW - timedelta(hours=1)).isoformat()}"), finding.reason
    # A status host a few seconds behind the pull's: shown as ahead, not clamped to 0, and not judged.
    close = {("pull", "s"): {"result": "ok", "watermark": (NOW + timedelta(seconds=30)).isoformat(),
                             "unconfirmed_slices": 0, "sent": 2}}
    [finding] = assess(close, 0, NOW, 900)
    assert (finding.state, finding.reason) == (OK, "watermark 30s ahead of this clock, 2 versions sent by the last run")


def test_status_judges_the_pulls_clock_against_graphs_both_ways():
    def record(skew: float | None, **more) -> dict:
        return {("pull", "s"): {"result": "ok", "watermark": (NOW - timedelta(seconds=20)).isoformat(), "sent": 1,
                                "unconfirmed_slices": 0, "graph_date": "2026-11-27T11:59:50+00:00",
                                "clock_skew_seconds": skew, **more}}

    [ahead] = assess(record(61.0), 0, NOW, 900, max_clock_skew_seconds=60)
    assert ahead.state == FAILING
    assert ahead.reason.startswith("the pull's clock is 61s ahead of Graph's (its Date header "
                                   "2026-11-27T11:59:50+00:00; limit 60s): fix the host's time sync"), ahead.reason
    [behind] = assess(record(-3600.0), 0, NOW, 900, max_clock_skew_seconds=60)
    assert behind.state == LAGGING
    assert behind.reason.startswith("the pull's clock is 60m behind Graph's"), behind.reason
    for within in (60.0, -60.0, 0.4, None):
        [finding] = assess(record(within), 0, NOW, 900, max_clock_skew_seconds=60)
        assert finding.state == OK, (within, finding)
    [late] = assess(record(61.0), 0, NOW, 900, max_clock_skew_seconds=120)
    assert late.state == OK


def test_a_date_header_that_cannot_bound_the_watermark_says_why():
    def headers(*values: str) -> HeadersCollection:
        collection = HeadersCollection()
        collection.add("Date", list(values))
        return collection

    assert graph_time(headers("Fri, 27 Nov 2026 12:00:00 GMT"), 1.0) == GraphTime(NOW, 1.0)
    # A proxy adding its own: the earlier bounds Graph's time safely.
    assert graph_time(headers("Fri, 27 Nov 2026 12:00:00 GMT", "Fri, 27 Nov 2026 12:00:09 GMT"), 1.0).date == NOW
    assert graph_time(HeadersCollection(), 1.0).problem == "Graph's answer carried no Date header"
    assert graph_time(headers("yesterday"), 1.0).problem == "Graph's Date header 'yesterday' does not parse"
    unzoned = graph_time(headers("Fri, 27 Nov 2026 12:00:00 -0000"), 1.0)
    assert unzoned.date is None and unzoned.problem.endswith("has no zone")
