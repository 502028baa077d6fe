"""The Event Hub seam's local side: with no Event Hub configured, each batch is normalized into the lake at once.

Batches are still cut by the SDK's EventDataBatch at Event Hubs' 1 MB limit, so the CLI exercises the same claim
check path as Azure.
"""

from __future__ import annotations

from azure.eventhub import EventDataBatch

from shared.land.detect import Detector
from shared.land.normalize import InboundEvent, NormalizeResult, normalize_events
from shared.core.storage import Store

EVENT_HUBS_MAX_BATCH_BYTES = 1_048_576  # Standard and Premium tiers
# Normalize early once this many events wait, so a dense slice of a backfill does not grow memory.
MAX_PENDING_EVENTS = 1_000


class InProcessSink:
    """Buffers a slice's batches and normalizes them together on flush, so a slice makes one file per day
    partition instead of one per provider batch."""

    def __init__(self, lake: Store, state: Store, detector: Detector | None = None) -> None:
        self._lake = lake
        self._state = state
        self._detector = detector
        self._pending: list[InboundEvent] = []
        self.result = NormalizeResult()

    def create_batch(self, hub: str, partition_key: str) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=EVENT_HUBS_MAX_BATCH_BYTES, partition_key=partition_key)

    def send(self, hub: str, batch: EventDataBatch) -> None:
        self._pending.extend(
            InboundEvent(body=b"".join(event.body), properties=dict(event.properties or {}),
                         metadata={"hub": hub, "partition_key": batch._partition_key})  # noqa: SLF001
            for event in batch._internal_events)  # noqa: SLF001 - the SDK exposes no public iterator over a batch
        if len(self._pending) >= MAX_PENDING_EVENTS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        done = normalize_events(self._pending, lake=self._lake, state=self._state, detector=self._detector)
        self._pending = []
        self.result.rows += done.rows
        self.result.duplicates += done.duplicates
        self.result.files.extend(done.files)
        self.result.quarantined.extend(done.quarantined)

    def close(self) -> None:
        self.flush()
