"""The pull path against the Graph simulator over HTTP, through the real msgraph-sdk and azure-identity."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from normalizers.core import row_id
from shared.core.event_format import CLAIM_CHECK_KEY
from shared.pull.graph import Backoff, make_credential
from shared.land.local_sink import InProcessSink
from shared.land.normalize import InboundEvent, normalize_events
from shared.pull.run import PullFailed, pull_all, pull_source, raise_for_failures
from shared.core.storage import open_store
from shared.pull.watermark import WatermarkStore
from tests.doubles import RecordingSink

SHORT_BACKOFF = Backoff(status_factor=0.02, status_max=0.1, transport_multiplier=0.02, transport_max=0.1,
                        authority_factor=0.02)


def run_pull(pipe, sink=None, clock=time.monotonic, **overrides):
    settings = pipe.settings(**overrides)
    state = open_store(settings.state_url)
    sink = sink or InProcessSink(open_store(settings.lake_url), state)
    try:
        summaries = asyncio.run(pull_all(settings, state, sink, clock=clock))
    finally:
        sink.close()
    raise_for_failures(summaries)
    return summaries


def event_row_ids(pipe, sink: RecordingSink) -> Counter:
    ids = Counter()
    for event in sink.events:
        doc = orjson.loads(b"".join(event.body))
        if CLAIM_CHECK_KEY in doc:
            doc = orjson.loads(open_store(pipe.env["STATE_URL"]).read(doc[CLAIM_CHECK_KEY]).data)
        ids[row_id(doc["tenantId"], doc["id"], doc["lastUpdateDateTime"], doc.get("serviceSource"))] += 1
    return ids


@pytest.mark.parametrize("kind", ["local", "azurite"])
def test_first_run_lands_every_alert_in_the_lake(make_pipeline, kind):
    pipe = make_pipeline(kind)
    [summary] = run_pull(pipe)
    assert summary.error is None
    assert summary.sent == pipe.tenant.alert_count
    assert sorted(pipe.lake_row_ids()) == sorted(pipe.expected_row_ids())
    mark = WatermarkStore(open_store(pipe.env["STATE_URL"]), summary.source_id).load()
    assert mark.position.isoformat() == summary.watermark_after
    assert summary.slices_done == summary.slices_planned > 1


def sent_pairs(sink: RecordingSink) -> set[tuple[str, str]]:
    return {(e.properties["alert_id"], e.properties["last_update"]) for e in sink.events}


def test_overlap_is_read_again_but_not_sent_again(make_pipeline):
    pipe = make_pipeline()
    pipe.tenant.mutate(new_alerts=5)
    pipe.settle()
    first = RecordingSink()
    [before] = run_pull(pipe, first)
    overlap_start = datetime.fromisoformat(before.watermark_after) - timedelta(seconds=30)
    pipe.tenant.mutate(new_alerts=5, updates=5, max_lateness_seconds=0.5)
    pipe.settle()
    second = RecordingSink()
    [after] = run_pull(pipe, second)
    reread = {pair for pair in sent_pairs(first) if datetime.fromisoformat(pair[1]) >= overlap_start}
    assert len(reread) >= 5
    assert sum(c.duplicates for c in after.providers.values()) == len(reread & pipe.current_pairs())
    sent = event_row_ids(pipe, second)
    assert len(sent) == 10 and set(sent.values()) == {1}
    assert sent_pairs(second).isdisjoint(sent_pairs(first))


def test_events_are_keyed_by_provider_and_keep_newer_enum_values(make_pipeline):
    pipe = make_pipeline(alerts=400)
    sink = RecordingSink()
    [summary] = run_pull(pipe, sink)
    providers = {batch.partition_key for batch in sink.batches}
    # Both come back only with Prefer: include-unknown-enum-members.
    assert {"microsoftSentinel", "microsoftDefenderForCloud"} <= providers
    assert "unknownFutureValue" not in providers
    for batch in sink.batches:
        for event in batch.events:
            alert = orjson.loads(b"".join(event.body))
            assert alert["serviceSource"] == batch.partition_key == event.properties["provider"]
            assert event.properties["alert_id"] == alert["id"]
            assert event.properties["last_update"] == alert["lastUpdateDateTime"]
            assert event.properties["schema"] == "MicrosoftGraph.SecurityAlertV2"
            assert event.properties["source_id"] == summary.source_id
    assert all(batch.hub == "graph-alerts" for batch in sink.batches)


def test_per_provider_hub_mapping(make_pipeline):
    pipe = make_pipeline(EVENTHUB_PROVIDER_HUBS='{"microsoftSentinel": "sentinel-alerts"}')
    sink = RecordingSink()
    run_pull(pipe, sink)
    hubs = {(batch.partition_key, batch.hub) for batch in sink.batches}
    assert ("microsoftSentinel", "sentinel-alerts") in hubs
    assert all(hub == "graph-alerts" for provider, hub in hubs if provider != "microsoftSentinel")


def test_alert_too_big_for_a_batch_goes_by_claim_check_and_lands(make_pipeline):
    pipe = make_pipeline(alerts=200)
    # The SDK's own batch, only smaller than Event Hubs' 1 MB, so ordinary alerts overflow it.
    sink = RecordingSink(max_batch_bytes=3000)
    [summary] = run_pull(pipe, sink)
    claims = sum(c.claim_checks for c in summary.providers.values())
    assert claims > 0
    assert all(batch.size_in_bytes <= 3000 for batch in sink.batches)
    pointers = [e for e in sink.events if "claim_check" in e.properties]
    assert len(pointers) == claims
    result = normalize_events(
        [InboundEvent(b"".join(e.body), dict(e.properties)) for e in sink.events],
        lake=open_store(pipe.env["LAKE_URL"]), state=open_store(pipe.env["STATE_URL"]))
    assert result.quarantined == []
    assert sorted(pipe.lake_row_ids()) == sorted(pipe.expected_row_ids())


def test_missing_graph_role_is_one_actionable_line_and_other_sources_still_run(make_pipeline):
    pipe = make_pipeline(alerts=100)
    sim = pipe.sim
    sources = [
        {"id": "denied", "label": "No consent", "tenant_id": sim.tenant_id, "credential": "client_secret",
         "client_id": sim.client_id_without_role, "client_secret_setting": "GRAPH_CLIENT_SECRET"},
        {"id": "granted", "label": "Consented", "tenant_id": sim.tenant_id, "credential": "client_secret",
         "client_id": sim.client_id, "client_secret_setting": "GRAPH_CLIENT_SECRET"},
    ]
    with pytest.raises(PullFailed) as failed:
        run_pull(pipe, GRAPH_SOURCES=orjson.dumps(sources).decode())
    message = str(failed.value)
    assert "denied" in message and "SecurityAlert.Read.All" in message and "\n" not in message
    assert "granted" not in message
    assert len(pipe.lake_row_ids()) == pipe.tenant.alert_count


def test_unreachable_endpoints_are_named(make_pipeline, monkeypatch, tmp_path):
    pipe = make_pipeline(alerts=10)
    ca = tmp_path / "ca.pem"  # the simulator deletes its CA when it stops; clients still load the file
    ca.write_bytes(open(pipe.sim.ca_bundle, "rb").read())
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    settings = pipe.settings()
    source = settings.sources()[0]
    state = open_store(settings.state_url)
    credential = make_credential(source, settings)
    # Cached the way kiota asks for it, so the run below needs no authority.
    credential.get_token(f"{settings.graph_endpoint}/.default", enable_cae=True)
    pipe.sim.stop()
    # What is named, not how long the retries before it wait: those are the defaults' in test_pull_faults.py.
    summary = asyncio.run(pull_source(source, settings, state, RecordingSink(), credential=credential,
                                      backoff=SHORT_BACKOFF))
    assert summary.error.startswith(f"cannot reach Graph at {settings.graph_endpoint}")
    assert "\n" not in summary.error and summary.watermark_after is None
    summary = asyncio.run(pull_source(source, settings, state, RecordingSink(), backoff=SHORT_BACKOFF))
    assert summary.error.startswith(f"cannot reach the authority {settings.graph_authority_host}")


def test_event_hub_failure_keeps_the_watermark_at_the_last_completed_slice(make_pipeline):
    pipe = make_pipeline(alerts=400, PULL_SLICE_MINUTES="120")
    with pytest.raises(PullFailed, match="Event Hubs unavailable"):
        run_pull(pipe, RecordingSink(fail_after_batches=15))
    state = open_store(pipe.env["STATE_URL"])
    stuck = WatermarkStore(state, pipe.tenant.tenant_id).load().position
    assert stuck is not None and stuck < datetime.now(UTC).replace(microsecond=0)
    sink = RecordingSink()
    [summary] = run_pull(pipe, sink)
    assert summary.error is None
    # The resumed run starts one overlap before where the failed one stopped, not from the beginning.
    assert datetime.fromisoformat(summary.window[1:26]) < stuck
    assert len(event_row_ids(pipe, sink)) < pipe.tenant.alert_count


def test_run_budget_stops_between_slices_and_the_next_run_resumes(make_pipeline):
    pipe = make_pipeline(alerts=300, PULL_SLICE_MINUTES="30", PULL_MAX_RUN_SECONDS="3")
    # A clock that moves one second each time the run looks at it: the budget runs out before the fourth slice.
    seconds = itertools.count()
    [first] = run_pull(pipe, clock=lambda: next(seconds))
    assert first.slices_done == 3 < first.slices_planned
    [second] = run_pull(pipe, PULL_MAX_RUN_SECONDS="600")
    overlap = timedelta(seconds=int(pipe.env["PULL_OVERLAP_SECONDS"]))
    assert second.window.startswith(f"[{(datetime.fromisoformat(first.watermark_after) - overlap).isoformat()},")
    assert second.slices_done == second.slices_planned
    assert sorted(set(pipe.lake_row_ids())) == sorted(pipe.expected_row_ids())


def test_backfill_after_a_partial_run_never_skips_the_gap(make_pipeline):
    pipe = make_pipeline(alerts=600, days=7)
    settings = pipe.settings()
    state = open_store(settings.state_url)
    lake = open_store(settings.lake_url)
    now = datetime.now(UTC)

    def run(**kwargs):
        sink = InProcessSink(lake, state)
        try:
            summaries = asyncio.run(pull_all(settings, state, sink, **kwargs))
        finally:
            sink.close()
        raise_for_failures(summaries)
        return summaries[0]

    # A first run that got only as far as five days ago, as one stopped by its budget or an outage would.
    partial = run(now=now - timedelta(days=5))
    stored = WatermarkStore(state, partial.source_id).load().position
    assert stored < now - timedelta(days=4)
    backfill = run(since=now - timedelta(hours=6))
    assert backfill.error is None and backfill.sent > 0
    # The backfill read none of the five days before its start: the stored watermark must not pass them.
    assert WatermarkStore(state, partial.source_id).load().position == stored
    assert backfill.watermark_after == stored.isoformat()
    for _ in range(3):
        run()
    assert sorted(set(pipe.lake_row_ids())) == sorted(pipe.expected_row_ids())


def test_with_the_default_window_a_version_shown_half_an_hour_late_lands_with_the_next_run(make_pipeline):
    """The default window ends at now, with no delay for Graph to catch up: the overlap alone must bring in what
    Graph shows after a run passed its timestamp, well beyond the few minutes the reference reports."""
    from shared.core.settings import Settings
    from simulator.lateness import Lateness

    defaults = {name: str(Settings.model_fields[field].default) for name, field in
                (("PULL_DELAY_SECONDS", "pull_delay_seconds"), ("PULL_OVERLAP_SECONDS", "pull_overlap_seconds"))}
    pipe = make_pipeline(**defaults)
    [first] = run_pull(pipe)
    half_an_hour_late = Lateness(typical_seconds=1800.0, tail_share=1.0, tail_max_seconds=1801.0)
    made = pipe.tenant.mutate(new_alerts=3, updates=3, lateness=half_an_hour_late)
    late = {(v.alert_id, v.last_update, v.service_source) for v in pipe.tenant.versions()[-len(made):]}
    mark = datetime.fromisoformat(first.watermark_after)
    assert all(datetime.fromisoformat(t.replace("Z", "+00:00")) < mark - timedelta(minutes=20) for _, t, _ in late)
    pipe.settle()
    run_pull(pipe)
    landed = set(pipe.lake_row_ids())
    assert {row_id(pipe.tenant.tenant_id, i, t, s) for i, t, s in late} <= landed
