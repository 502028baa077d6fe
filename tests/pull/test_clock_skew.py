"""A pull run on a clock ahead of Graph's (issue 18 item 2): the watermark it leaves ahead must not stop the reads
of the runs after it, and `graphlake status` must say what happened rather than OK."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
from click.testing import CliRunner

from normalizers.core import row_id
from shared.cli import main
from shared.core import health
from shared.core.storage import open_store
from shared.land.local_sink import InProcessSink
from shared.ops.status import FAILING, OK, assess
from shared.pull.run import pull_all, raise_for_failures
from shared.pull.watermark import Watermark, WatermarkStore

AHEAD = timedelta(hours=1)


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


def test_after_a_run_on_a_clock_ahead_the_next_runs_read_on_and_status_fails_once(make_pipeline):
    pipe = make_pipeline(alerts=30)
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
