"""Test doubles for the I/O seams that have no local emulator. Only the Event Hub seam needs one: its batches are
the SDK's own EventDataBatch objects, so sizes, the 1 MB limit and the claim check are real."""

from __future__ import annotations

from dataclasses import dataclass, field

from azure.eventhub import EventData, EventDataBatch

from shared.land.local_sink import EVENT_HUBS_MAX_BATCH_BYTES


@dataclass
class SentBatch:
    hub: str
    partition_key: str
    events: list[EventData]
    size_in_bytes: int


@dataclass
class RecordingSink:
    max_batch_bytes: int = EVENT_HUBS_MAX_BATCH_BYTES
    batches: list[SentBatch] = field(default_factory=list)
    fail_after_batches: int | None = None

    def create_batch(self, hub: str, partition_key: str) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=self.max_batch_bytes, partition_key=partition_key)

    def send(self, hub: str, batch: EventDataBatch) -> None:
        if self.fail_after_batches is not None and len(self.batches) >= self.fail_after_batches:
            raise ConnectionError("Event Hubs unavailable (test double)")
        self.batches.append(SentBatch(hub, batch._partition_key, list(batch._internal_events), batch.size_in_bytes))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def events(self) -> list[EventData]:
        return [event for batch in self.batches for event in batch.events]
