"""Azure Functions entry points (pull_alerts, normalize_alerts, normalize_logs, compact_lake, reconcile_alerts,
run_scheduled_rules).
Only wiring: the work happens in shared/, normalizers/ and detections/."""

from __future__ import annotations

import asyncio
import gc
import logging
from functools import cache
from typing import TYPE_CHECKING

import azure.functions as func

from shared.core.settings import Settings, load_settings, load_lake_access
from shared.core.storage import Store, open_store
from shared.land.normalize import ALERTS, LOGS, Family, InboundEvent
from shared.land.retries import Batch, normalize_delivery
from shared.pull.sinks import open_sink

if TYPE_CHECKING:
    from detections.loader import RuleSet
    from detections.realtime import Detector

app = func.FunctionApp()
log = logging.getLogger("graphlake")
# The worker lives for many invocations: keep the garbage collector from re-walking everything imported so far
# on every collection (bench/bench_normalize.py measures what that re-walk costs the normalizer).
gc.freeze()


@cache
def _store(url: str) -> Store:
    return open_store(url)


def _detector(settings: Settings) -> Detector | None:
    from detections.realtime import build_detector

    return build_detector(settings, rule_sets=_rule_set)


@cache
def _rule_set(folder: str | None) -> RuleSet:
    # Loaded once per worker and folder: loading rules costs more than a batch. The rest of the detector
    # (destinations, the settings they name, the delivery budget) is built from each invocation's settings, so no
    # cache key can miss one of them.
    from detections.realtime import load_rule_set

    return load_rule_set(folder)


@app.timer_trigger(arg_name="timer", schedule="%PULL_SCHEDULE%", run_on_startup=False, use_monitor=True)
def pull_alerts(timer: func.TimerRequest) -> None:
    # Imported here so the normalize path's cold start never loads msgraph.
    from shared.pull.run import pull_all, raise_for_failures

    settings = load_settings()
    if timer.past_due:
        log.warning("pull_alerts is running late; the watermark makes up for the missed ticks")
    # The Function App always sends to Event Hubs: normalize_alerts lands, and runs the rules.
    sink = open_sink(settings, state=_store(settings.state_url), detector=None, event_hub_only=True)
    try:
        raise_for_failures(asyncio.run(pull_all(settings, _store(settings.state_url), sink)))
    finally:
        sink.close()


@app.retry(strategy="exponential_backoff", max_retry_count="-1", minimum_interval="00:00:10",
           maximum_interval="00:15:00")
@app.event_hub_message_trigger(arg_name="events", event_hub_name="%EVENTHUB_NAME%", connection="EventHubConnection",
                               consumer_group="%EVENTHUB_CONSUMER_GROUP%", cardinality=func.Cardinality.MANY,
                               data_type=func.DataType.BINARY)
def normalize_alerts(events: list[func.EventHubEvent]) -> None:
    # Retries forever on purpose, but only a storage outage keeps raising: a batch failing for any other reason is
    # quarantined whole after NORMALIZE_MAX_ATTEMPTS deliveries (shared/land/retries.py), so the partition moves on.
    _land(events, ALERTS)


@app.retry(strategy="exponential_backoff", max_retry_count="-1", minimum_interval="00:00:10",
           maximum_interval="00:15:00")
@app.event_hub_message_trigger(arg_name="events", event_hub_name="%LOGS_EVENTHUB_NAME%",
                               connection="EventHubConnection", consumer_group="%LOGS_EVENTHUB_CONSUMER_GROUP%",
                               cardinality=func.Cardinality.MANY, data_type=func.DataType.BINARY)
def normalize_logs(events: list[func.EventHubEvent]) -> None:
    # Azure Monitor's records ({"records": [...]} an event) land by the alerts' path and retry policy, each record
    # routed by its category to its table; health records under normalize_logs.
    _land(events, LOGS)


def _land(events: list[func.EventHubEvent], family: Family) -> None:
    settings = load_settings()
    batch = _batch(events)
    result = normalize_delivery(
        [_inbound(event, index, batch.partition) for index, event in enumerate(events)], batch,
        lake=_store(settings.lake_url), state=_store(settings.state_url),
        max_attempts=settings.normalize_max_attempts, detector=_detector(settings), family=family)
    log.info("graphlake.%s rows=%d duplicates=%d files=%d quarantined=%d", family.component,
             result.rows, result.duplicates, len(result.files), len(result.quarantined))


@app.timer_trigger(arg_name="timer", schedule="%COMPACT_SCHEDULE%", run_on_startup=False, use_monitor=True)
def compact_lake(timer: func.TimerRequest) -> None:
    # No retry policy, like pull_alerts: a run stopped half-way is safe, and the next tick carries on.
    from shared.ops.compact import MB, compact_and_record

    settings = load_settings()
    summary = compact_and_record(_store(settings.lake_url), _store(settings.state_url),
                                 grace_days=settings.compact_grace_days, target_bytes=settings.compact_target_mb * MB,
                                 max_seconds=settings.compact_max_run_seconds)
    summary.raise_for_errors()


@app.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def reconcile_alerts(timer: func.TimerRequest) -> None:
    # No retry policy: the next tick compares the same hours again.
    from shared.ops.reconcile import raise_for_failures, reconcile_all

    settings = load_settings()
    sink = open_sink(settings, state=_store(settings.state_url), detector=None, event_hub_only=True)
    try:
        raise_for_failures(asyncio.run(reconcile_all(
            settings, _store(settings.state_url), _store(settings.lake_url), sink)))
    finally:
        sink.close()


@app.timer_trigger(arg_name="timer", schedule="%RULES_SCHEDULE%", run_on_startup=False, use_monitor=True)
def run_scheduled_rules(timer: func.TimerRequest) -> None:
    # No retry policy: the next tick runs what is due and retries the deliveries still waiting.
    from detections.scheduled import run_scheduled

    settings = load_settings()
    run_scheduled(_detector(settings), settings.lake_url, _store(settings.state_url), _store(settings.lake_url),
                  access=load_lake_access())


def _batch(events: list[func.EventHubEvent]) -> Batch:
    # With cardinality=many the host passes the partition's context once, in the metadata every event shares.
    context = (events[0].metadata or {}).get("PartitionContext") if events else None
    partition = str(context.get("PartitionId")) if isinstance(context, dict) and context.get("PartitionId") is not None \
        else "unknown"
    return Batch(partition, events[0].sequence_number if events else None)


def _inbound(event: func.EventHubEvent, index: int, partition: str) -> InboundEvent:
    # With cardinality=many the host passes every event's application properties in one shared array.
    metadata = event.metadata or {}
    properties_array = metadata.get("PropertiesArray") or []
    properties = properties_array[index] if index < len(properties_array) else {}
    return InboundEvent(
        body=event.get_body(),
        properties=properties or {},
        metadata={
            "partition": partition,
            "partition_key": event.partition_key,
            "sequence_number": event.sequence_number,
            "offset": event.offset,
            "enqueued_time": event.enqueued_time.isoformat() if event.enqueued_time else None,
        })
