"""Health records written by real pull runs, read back by `graphlake status`, on a local folder and on Azurite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from click.testing import CliRunner

from shared.core import health
from shared.cli import main
from shared.land.local_sink import InProcessSink
from shared.pull.run import pull_all, pull_source
from shared.land.quarantine import quarantine
from shared.ops.status import FAILING, LAGGING, OK, assess, check, worst
from shared.core.storage import open_store
from tests.doubles import RecordingSink

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def pull(pipe, now: datetime | None = None, **overrides):
    settings = pipe.settings(**overrides)
    state = open_store(settings.state_url)
    sink = InProcessSink(open_store(settings.lake_url), state)
    try:
        return asyncio.run(pull_all(settings, state, sink, now=now))
    finally:
        sink.close()


def status(pipe, **overrides) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(main, ["status", "--format", "json"], env={**pipe.env, **overrides})
    return result.exit_code, [orjson.loads(line) for line in result.output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_a_healthy_source_is_ok_and_its_record_follows_the_contract(make_pipeline, kind):
    pipe = make_pipeline(kind, alerts=50)
    [summary] = pull(pipe)
    state = open_store(pipe.env["STATE_URL"])
    record = health.load(state, "pull", summary.source_id)
    assert {k: record[k] for k in ("result", "consecutive_failures", "error", "watermark", "unconfirmed_slices",
                                   "sent")} == {
        "result": "ok", "consecutive_failures": 0, "error": None, "watermark": summary.watermark_after,
        "unconfirmed_slices": 0, "sent": 50}
    assert record["lag_seconds"] == summary.lag_seconds
    code, findings = status(pipe)
    assert code == 0
    assert [(f["component"], f["key"], f["state"]) for f in findings] == [("pull", summary.source_id, OK)]


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_failures_in_a_row_are_counted_and_make_status_fail(make_pipeline, kind):
    pipe = make_pipeline(kind, alerts=20)
    denied = {"GRAPH_CLIENT_ID": pipe.sim.client_id_without_role}
    for expected in (1, 2, 3):
        [summary] = pull(pipe, **denied)
        assert summary.error
        record = health.load(open_store(pipe.env["STATE_URL"]), "pull", summary.source_id)
        assert (record["result"], record["consecutive_failures"]) == ("failed", expected)
    code, [finding] = status(pipe)
    assert code == 1 and finding["state"] == FAILING
    assert finding["reason"].startswith("3 runs in a row failed:") and "SecurityAlert.Read.All" in finding["reason"]
    # One good run clears the count.
    [summary] = pull(pipe)
    assert summary.error is None
    assert health.load(open_store(pipe.env["STATE_URL"]), "pull", summary.source_id)["consecutive_failures"] == 0
    assert status(pipe)[0] == 0


def test_a_watermark_behind_the_limit_is_lagging(make_pipeline):
    pipe = make_pipeline(alerts=20)
    settings = pipe.settings()
    state = open_store(settings.state_url)
    # A run that could only read up to two hours ago, as one that stopped running would have left it.
    source = settings.sources()[0]
    sink = InProcessSink(open_store(settings.lake_url), state)
    summary = asyncio.run(pull_source(source, settings, state, sink, now=datetime.now(UTC) - timedelta(hours=2)))
    sink.close()
    assert summary.error is None
    code, [finding] = status(pipe)
    assert code == 1 and finding["state"] == LAGGING and "behind (limit 15m)" in finding["reason"]
    # That run's clock was also two hours behind Graph's Date, which is LAGGING on its own.
    assert "behind Graph's" in finding["reason"]
    assert status(pipe, PULL_MAX_LAG_SECONDS="36000")[0] == 1
    assert status(pipe, PULL_MAX_LAG_SECONDS="36000", PULL_MAX_CLOCK_SKEW_SECONDS="36000")[0] == 0


def test_quarantine_and_sources_that_never_ran_are_not_ok(make_pipeline):
    pipe = make_pipeline(alerts=5)
    code, findings = status(pipe)
    assert code == 1 and [(f["state"], f["reason"]) for f in findings] == [(LAGGING, "no pull run recorded yet")]
    pull(pipe)
    quarantine(open_store(pipe.env["STATE_URL"]), raw=b"not json", error="bad event", metadata={})
    code, findings = status(pipe)
    assert code == 1
    assert [(f["component"], f["state"]) for f in findings] == [("pull", OK), ("quarantine", LAGGING)]
    assert findings[1]["reason"].startswith("1 events in quarantine")


def test_table_output_names_each_state_and_reason(make_pipeline):
    pipe = make_pipeline(alerts=5)
    pull(pipe)
    result = CliRunner().invoke(main, ["status"], env=pipe.env)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"OK       pull/{pipe.tenant.tenant_id}: watermark ")
    assert result.stderr == f"graphlake: state {pipe.env['STATE_URL']} (from STATE_URL)\n"


def record(component: str, key: str, **doc) -> dict:
    return {(component, key): {"updated": NOW.isoformat(), **doc}}


@pytest.mark.parametrize("records, expected", [
    (record("pull", "s", result="ok", watermark=(NOW - timedelta(minutes=3)).isoformat(), unconfirmed_slices=0,
            sent=7), (OK, "watermark 3m behind, 7 versions sent by the last run")),
    (record("pull", "s", result="ok", watermark=(NOW - timedelta(minutes=3)).isoformat(), unconfirmed_slices=2),
     (LAGGING, "2 slices could not be confirmed complete in the last run; the next run reads them again")),
    (record("pull", "s", result="ok", watermark=None), (LAGGING, "no slice completed yet")),
    (record("pull", "s", result="failed", consecutive_failures=1, error="boom"), (FAILING, "last run failed: boom")),
    (record("normalize", "0", result="ok", rows=10, quarantined=1), (OK, "last batch: 10 rows, 1 quarantined")),
    (record("normalize", "0", result="failed", consecutive_failures=4, error="disk"),
     (FAILING, "4 batches in a row failed: disk")),
    (record("normalize", "0", result="gave_up", error="bug", quarantined=12),
     (FAILING, "gave a batch up after retries (bug); its 12 events are in quarantine")),
    # The Azure Monitor logs' normalizer keeps the same records, judged the same way.
    (record("normalize_logs", "0", result="ok", rows=500, quarantined=0), (OK, "last batch: 500 rows, 0 quarantined")),
    (record("normalize_logs", "0", result="failed", consecutive_failures=2, error="disk"),
     (FAILING, "2 batches in a row failed: disk")),
    (record("normalize_logs", "0", result="gave_up", error="bug", quarantined=3),
     (FAILING, "gave a batch up after retries (bug); its 3 events are in quarantine")),
    (record("reconcile", "s", result="ok", missing=3, repaired=3, late_found=0),
     (OK, "lake complete against Graph (3 repaired)")),
    (record("reconcile", "s", result="ok", missing=3, repaired=3, late_found=2, resent=3, landed=3, unsent=0),
     (LAGGING, "2 versions showed up in Graph later than the pull's overlap (re-sent, and landed); raise "
               "PULL_OVERLAP_SECONDS if this keeps happening")),
    (record("reconcile", "s", result="ok", missing=5, repaired=1, late_found=0),
     (FAILING, "4 versions Graph holds are missing from the lake and were not re-sent")),
    (record("reconcile", "s", result="ok", missing=5, repaired=0, resent=3, landed=0, unsent=2, pending=3),
     (FAILING, "2 versions Graph holds are missing from the lake and were not re-sent")),
    # Re-sent is not repaired: until the re-sent versions are seen in the lake, the lake is not complete.
    (record("reconcile", "s", result="ok", missing=4, repaired=0, resent=4, landed=0, unsent=0, pending=4,
            not_landed=0),
     (LAGGING, "4 versions re-sent to the lake have not landed yet; the next run looks for them and fails if they "
               "still have not")),
    (record("reconcile", "s", result="ok", missing=4, repaired=0, resent=4, landed=0, unsent=0, pending=4,
            not_landed=4, not_landed_since="2026-11-27T10:15:00+00:00", eventhub="graph-alerts",
            consumer_group="normalizer"),
     (FAILING, "4 versions sent but not landed since 2026-11-27T10:15:00+00:00, hub graph-alerts consumer group "
               "normalizer: the normalizer is not consuming them (its Event Hub trigger stopped, or the consumer "
               "group is wrong)")),
    (record("reconcile", "s", result="ok", missing=0, repaired=0, resent=0, landed=4, unsent=0, pending=0,
            not_landed=0), (OK, "lake complete against Graph (4 re-sent versions landed)")),
    (record("reconcile", "s", result="failed", consecutive_failures=2, error="429"),
     (FAILING, "2 runs in a row failed: 429")),
    (record("compact", "lake", result="ok", partitions_compacted=2, indexes_written=2, indexes_repaired=3),
     (OK, "last run: 2 partitions compacted; indexes: 2 written with their partitions, 3 found missing or stale and "
          "written again")),
    (record("compact", "lake", result="ok", stopped_early=True, indexes_repaired=40),
     (LAGGING, "the last run stopped at COMPACT_MAX_RUN_SECONDS with closed partitions left to compact or index (the "
               "next run continues; until then search reads their days whole); indexes: 0 written with their "
               "partitions, 40 found missing or stale and written again")),
    (record("compact", "lake", result="failed", partitions_failed=1, errors=["t/year=2026/month=03/day=01: bad"]),
     (FAILING, "1 partitions not compacted, first: t/year=2026/month=03/day=01: bad; indexes: 0 written with their "
               "partitions, 0 found missing or stale and written again")),
])
def test_each_component_is_judged_with_its_reason(records, expected):
    [finding] = assess(records, 0, NOW, 900)
    assert (finding.state, finding.reason) == expected


def test_a_truncated_health_record_is_a_finding_naming_its_path_and_the_rest_are_judged(make_pipeline):
    pipe = make_pipeline(alerts=5)
    pull(pipe)
    state = open_store(pipe.env["STATE_URL"])
    state.write("health/normalize/0.json", b'{"result": "ok", "rows": 1')
    code, findings = status(pipe)
    assert code == 1
    by_path = {(f["component"], f["key"]): f for f in findings}
    assert by_path[("normalize", "0")]["state"] == FAILING
    assert "health/normalize/0.json" in by_path[("normalize", "0")]["reason"]
    assert by_path[("pull", pipe.tenant.tenant_id)]["state"] == OK


def _send_and_land(sent_at: datetime, landed_at: datetime | None) -> dict:
    records = record("pull", "s", result="ok", watermark=(NOW - timedelta(minutes=3)).isoformat(), sent=7)
    records[("pull", "s")]["updated"] = sent_at.isoformat()
    if landed_at is not None:
        records |= record("normalize", "0", result="ok", rows=7)
        records[("normalize", "0")]["updated"] = landed_at.isoformat()
    return records


@pytest.mark.parametrize("sent_before, landed_before, event_hub, expected", [
    # Landed seconds after the send, or a few trigger waits before its record was written: keeping up.
    (timedelta(minutes=2), timedelta(minutes=2) - timedelta(seconds=3), False, None),
    (timedelta(minutes=2), timedelta(minutes=2) + timedelta(seconds=50), False, None),
    # Nothing landed for ten minutes before the pull's last send: the consumer stopped.
    (timedelta(minutes=2), timedelta(minutes=12), False,
     "the normalizer has not landed since 2026-11-27T11:48:00+00:00, while pull/s sent 7 versions by "
     "2026-11-27T11:58:00+00:00: its Event Hub trigger is stopped or behind, or reads another consumer group"),
    # Never landed anything, in a deployment that sends to Event Hubs (a wrong consumer group from the start)...
    (timedelta(minutes=2), None, True,
     "the normalizer has not landed anything yet, while pull/s sent 7 versions by 2026-11-27T11:58:00+00:00: its "
     "Event Hub trigger is stopped or behind, or reads another consumer group"),
    # ... but not while the first batches may still be on their way, nor where the pull lands in-process.
    (timedelta(seconds=20), None, True, None),
    (timedelta(minutes=2), None, False, None),
])
def test_a_normalizer_behind_the_pulls_last_send_is_lagging(sent_before, landed_before, event_hub, expected):
    records = _send_and_land(NOW - sent_before, None if landed_before is None else NOW - landed_before)
    findings = assess(records, 0, NOW, 900, event_hub=event_hub)
    consumer = [(f.state, f.reason) for f in findings if (f.component, f.key) == ("normalize", "consumer")]
    assert consumer == ([] if expected is None else [(LAGGING, expected)])
    assert all(f.state == OK for f in findings if (f.component, f.key) != ("normalize", "consumer"))


def test_the_normalizer_lag_allows_the_triggers_own_wait():
    # TRIGGER_MAX_WAIT_SECONDS stands for host.json's maxWaitTime: one changed without the other misjudges lag.
    import json

    from shared.ops.status import NORMALIZER_LAG_WAITS, TRIGGER_MAX_WAIT_SECONDS
    from tests.conftest import REPO

    wait = json.loads((REPO / "host.json").read_text())["extensions"]["eventHubs"]["maxWaitTime"]
    hours, minutes, seconds = (int(part) for part in wait.split(":"))
    assert hours * 3600 + minutes * 60 + seconds == TRIGGER_MAX_WAIT_SECONDS
    assert NORMALIZER_LAG_WAITS >= 3


def test_a_reconciliation_that_compared_nothing_is_not_ok():
    # The pull's watermark older than the look-back leaves the audit an empty window: no proof the lake is complete.
    records = record("reconcile", "s", result="ok", missing=0, repaired=0, late_found=0, landed=0, window="")
    [finding] = assess(records, 0, NOW, 900)
    assert finding.state == LAGGING and "nothing compared" in finding.reason


def test_a_stopped_normalizer_stays_lagging_after_the_pulls_go_quiet(make_pipeline):
    # A run sends, nothing consumes (Event Hubs takes it, the trigger is stopped), and the runs after it have
    # nothing new to send: the normalizer is still behind that send.
    pipe = make_pipeline(alerts=12)
    settings = pipe.settings()
    state = open_store(settings.state_url)
    hub = RecordingSink()
    sent_at = datetime.now(UTC)
    [first] = asyncio.run(pull_all(settings, state, hub, now=sent_at))
    assert first.sent == 12
    for _ in range(2):
        [quiet] = asyncio.run(pull_all(settings, state, hub, now=datetime.now(UTC)))
        assert (quiet.error, quiet.sent) == (None, 0)
    record = health.load(state, "pull", first.source_id)
    assert (record["sent"], record["last_sent"], record["last_sent_versions"]) == (0, sent_at.isoformat(), 12)

    findings = {(f.component, f.key): f for f in check(state, sent_at + timedelta(minutes=3), 3600,
                                                         [first.source_id], event_hub=True)}
    consumer = findings[("normalize", "consumer")]
    assert consumer.state == LAGGING
    assert f"pull/{first.source_id} sent 12 versions by {sent_at.isoformat()}" in consumer.reason


def _logs_landed(*ago: timedelta) -> dict:
    """normalize_logs records, one a partition, each last landing the given time before NOW."""
    records = {}
    for partition, before in enumerate(ago):
        records |= record("normalize_logs", str(partition), result="ok", rows=0, quarantined=0,
                          last_landed=(NOW - before).isoformat())
    return records


@pytest.mark.parametrize("ago, expected", [
    # One partition landed a few minutes ago: logs arrive, whatever the other partition, sent nothing, says.
    ((timedelta(minutes=4), timedelta(days=3)), None),
    # Every partition quiet for longer than the limit: the logs that were arriving have stopped.
    ((timedelta(hours=2), timedelta(days=3)),
     "no Azure Monitor log record has landed since 2026-11-27T10:00:00+00:00, 2h ago (LOGS_MAX_SILENCE_SECONDS: "
     "60m): a diagnostic setting was removed or points elsewhere, the logs hub's name changed, or normalize_logs "
     "stopped; if the deployment stopped streaming logs on purpose, delete state/health/normalize_logs/"),
])
def test_logs_that_stopped_arriving_are_lagging(ago, expected):
    findings = assess(_logs_landed(*ago), 0, NOW, 900, logs_max_silence_seconds=3600)
    arrival = [(f.state, f.reason) for f in findings if (f.component, f.key) == ("normalize_logs", "arrival")]
    assert arrival == ([] if expected is None else [(LAGGING, expected)])
    assert worst(findings) == (OK if expected is None else LAGGING)


def test_a_deployment_that_never_streamed_logs_is_not_judged_on_them():
    records = record("pull", "s", result="ok", watermark=(NOW - timedelta(minutes=3)).isoformat(), sent=7)
    assert [f.state for f in assess(records, 0, NOW, 900, logs_max_silence_seconds=60)] == [OK]


def test_a_logs_record_from_before_last_landed_counts_its_own_batch():
    # Records written before `last_landed` existed: a batch that landed rows landed at `updated`.
    old = record("normalize_logs", "0", result="ok", rows=5, quarantined=0)
    old[("normalize_logs", "0")]["updated"] = (NOW - timedelta(hours=3)).isoformat()
    findings = assess(old, 0, NOW, 900, logs_max_silence_seconds=3600)
    assert [(f.key, f.state) for f in findings] == [("0", OK), ("arrival", LAGGING)]


def test_status_says_when_streamed_logs_stopped(make_pipeline):
    # Real landings through normalize_logs' path, then a status run long after the last one.
    from shared.land.normalize import LOGS, InboundEvent
    from shared.land.retries import Batch, normalize_delivery
    from tests.log_records import body, golden as log_golden

    pipe = make_pipeline(alerts=5)
    pull(pipe)
    settings = pipe.settings()
    state, lake = open_store(settings.state_url), open_store(settings.lake_url)
    landed_at = datetime.now(UTC) - timedelta(hours=3)
    result = normalize_delivery([InboundEvent(body(log_golden("entra_signin_logs")[:2]))], Batch("0", 1), lake=lake,
                                state=state, max_attempts=5, now=landed_at, family=LOGS)
    assert result.rows == 2
    assert health.load(state, "normalize_logs", "0")["last_landed"] == landed_at.isoformat()
    code, findings = status(pipe)
    assert code == 1
    [arrival] = [f for f in findings if (f["component"], f["key"]) == ("normalize_logs", "arrival")]
    assert arrival["state"] == LAGGING and f"since {landed_at.isoformat()}, 3h ago" in arrival["reason"]
    # The limit is the setting's.
    code, findings = status(pipe, LOGS_MAX_SILENCE_SECONDS=str(4 * 3600))
    assert code == 0 and not [f for f in findings if f["key"] == "arrival"]
