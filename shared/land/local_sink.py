"""The Event Hub seam's local side: with no Event Hub configured, each batch is normalized into the lake at once.

Batches are still cut by the SDK's EventDataBatch at Event Hubs' 1 MB limit, so the CLI exercises the same claim
check path as Azure.

The alerts' batches land as part of the pull that sent them, which writes no normalize record (status.py judges the
pull's). The logs hub, when one is named (the demo's simulated tenant streams Azure Monitor records to it), has no
pull in front of it: each batch sent to it is one delivery to the landing path as normalize_logs's trigger makes it,
with its retry policy and its health record (partition `local`), so `graphlake status` judges it as it judges the
function.
"""

from __future__ import annotations

from azure.eventhub import EventDataBatch

from shared.land.detect import Detector
from shared.land.normalize import LOGS, InboundEvent, NormalizeResult, normalize_events
from shared.land.retries import Batch, normalize_delivery
from shared.core.storage import Store

EVENT_HUBS_MAX_BATCH_BYTES = 1_048_576  # Standard and Premium tiers
# Normalize early once this many events wait, so a dense slice of a backfill does not grow memory.
MAX_PENDING_EVENTS = 1_000
# The partition of the in-process deliveries' health records.
LOCAL_PARTITION = "local"


class InProcessSink:
    """Buffers a slice's batches and normalizes them together on flush, so a slice makes one file per day
    partition instead of one per provider batch."""

    def __init__(self, lake: Store, state: Store, detector: Detector | None = None, *, logs_hub: str | None = None,
                 max_attempts: int = 1) -> None:
        """`logs_hub`: batches sent to this hub are Azure Monitor records, each batch one delivery given up after
        `max_attempts` (NORMALIZE_MAX_ATTEMPTS)."""
        self._lake = lake
        self._state = state
        self._detector = detector
        self._logs_hub = logs_hub
        self._max_attempts = max_attempts
        # Event Hubs numbers a partition's events from 0; a delivery is known by its first event's number.
        self._logs_sequence = 0
        self._pending: list[InboundEvent] = []
        self.result = NormalizeResult()
        self.logs_result = NormalizeResult()

    def create_batch(self, hub: str, partition_key: str) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=EVENT_HUBS_MAX_BATCH_BYTES, partition_key=partition_key)

    def send(self, hub: str, batch: EventDataBatch) -> None:
        events = [InboundEvent(body=b"".join(event.body), properties=dict(event.properties or {}),
                               metadata={"hub": hub, "partition_key": batch._partition_key})  # noqa: SLF001
                  for event in batch._internal_events]  # noqa: SLF001 - the SDK exposes no public iterator over a batch
        if hub == self._logs_hub:
            self._deliver_logs(events)
            return
        self._pending.extend(events)
        if len(self._pending) >= MAX_PENDING_EVENTS:
            self.flush()

    def _deliver_logs(self, events: list[InboundEvent]) -> None:
        first = self._logs_sequence
        self._logs_sequence += len(events)
        for number, event in enumerate(events, first):
            event.metadata = {**event.metadata, "partition": LOCAL_PARTITION, "sequence_number": number}
        done = normalize_delivery(events, Batch(LOCAL_PARTITION, first), lake=self._lake, state=self._state,
                                  max_attempts=self._max_attempts, detector=self._detector, family=LOGS)
        _add(self.logs_result, done)

    def flush(self) -> None:
        if not self._pending:
            return
        done = normalize_events(self._pending, lake=self._lake, state=self._state, detector=self._detector)
        self._pending = []
        _add(self.result, done)

    def close(self) -> None:
        self.flush()


def _add(total: NormalizeResult, done: NormalizeResult) -> None:
    total.rows += done.rows
    total.duplicates += done.duplicates
    total.files.extend(done.files)
    total.quarantined.extend(done.quarantined)
    total.rule_errors.extend(done.rule_errors)
