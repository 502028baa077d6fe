"""Fans a page of alerts out to Event Hubs: one partition key per provider, so each provider keeps its order.

The sink is the narrow seam: Event Hubs in Azure, the in-process normalizer in the CLI, a recorder in tests. All of
them size batches with the SDK's own EventDataBatch, so the 1 MB limit and the claim check behave the same.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import orjson
from azure.eventhub import EventData, EventDataBatch

from shared.core.event_format import CLAIM_CHECK_KEY, CLAIM_CHECK_PREFIX, SCHEMA_NAME
from shared.core.settings import Settings, Source
from shared.core.storage import Store

UNKNOWN_PROVIDER = "unknown"


class EventSink(Protocol):
    def create_batch(self, hub: str, partition_key: str) -> EventDataBatch: ...
    def send(self, hub: str, batch: EventDataBatch) -> None: ...
    # Returns once everything sent so far is durable; the watermark advances only after it.
    def flush(self) -> None: ...
    def close(self) -> None: ...


class EventHubSink:
    """Azure Event Hubs, with the app's managed identity (DefaultAzureCredential honours AZURE_CLIENT_ID)."""

    def __init__(self, namespace: str, credential=None) -> None:
        from azure.eventhub import EventHubProducerClient
        from azure.identity import DefaultAzureCredential

        self._namespace = namespace
        self._credential = credential or DefaultAzureCredential()
        self._client_type = EventHubProducerClient
        self._producers: dict = {}

    def _producer(self, hub: str):
        if hub not in self._producers:
            self._producers[hub] = self._client_type(
                fully_qualified_namespace=self._namespace, eventhub_name=hub, credential=self._credential)
        return self._producers[hub]

    def create_batch(self, hub: str, partition_key: str) -> EventDataBatch:
        return self._producer(hub).create_batch(partition_key=partition_key)

    def send(self, hub: str, batch: EventDataBatch) -> None:
        self._producer(hub).send_batch(batch)

    def flush(self) -> None:
        pass  # send_batch returns only after Event Hubs acknowledged the batch

    def close(self) -> None:
        for producer in self._producers.values():
            producer.close()
        self._producers.clear()


@dataclass
class ProviderCounts:
    sent: int = 0
    duplicates: int = 0
    claim_checks: int = 0
    batches: int = 0


def hub_router(settings: Settings) -> Callable[[str], str]:
    """The Event Hub of each provider: its own when EVENTHUB_PROVIDER_HUBS names one, else the default hub."""
    hubs = settings.provider_hubs()
    return lambda provider: hubs.get(provider, settings.eventhub_name)


class Fanout:
    def __init__(self, sink: EventSink, claim_store: Store, source: Source, hub_for: Callable[[str], str]) -> None:
        self._sink = sink
        self._claims = claim_store
        self._source = source
        self._hub_for = hub_for
        self.counts: dict[str, ProviderCounts] = defaultdict(ProviderCounts)

    def send_page(self, alerts: Iterable[dict], pulled_at: str) -> None:
        """Returns once Event Hubs has accepted every alert of the page; raises otherwise."""
        by_provider: dict[str, list[dict]] = defaultdict(list)
        for alert in alerts:
            by_provider[alert.get("serviceSource") or UNKNOWN_PROVIDER].append(alert)
        for provider, group in by_provider.items():
            self._send_provider(provider, group, pulled_at)

    def _send_provider(self, provider: str, alerts: list[dict], pulled_at: str) -> None:
        hub = self._hub_for(provider)
        counts = self.counts[provider]
        batch = self._sink.create_batch(hub, provider)
        for alert in alerts:
            event = self._event(alert, provider, pulled_at)
            try:
                batch.add(event)
            except ValueError:
                if len(batch):
                    self._sink.send(hub, batch)
                    counts.batches += 1
                    batch = self._sink.create_batch(hub, provider)
                try:
                    batch.add(event)
                except ValueError:
                    # Larger than an empty batch can hold: park the body in a blob, send a pointer instead.
                    batch.add(self._claim_check(alert, event, provider, pulled_at))
                    counts.claim_checks += 1
            counts.sent += 1
        if len(batch):
            self._sink.send(hub, batch)
            counts.batches += 1

    def _event(self, alert: dict, provider: str, pulled_at: str, body: bytes | None = None) -> EventData:
        event = EventData(body if body is not None else orjson.dumps(alert))
        event.properties = {
            "schema": SCHEMA_NAME,
            "provider": provider,
            "alert_id": str(alert.get("id", "")),
            "last_update": str(alert.get("lastUpdateDateTime", "")),
            "source_id": self._source.id,
            "source_label": self._source.label,
            "pulled_at": pulled_at,
        }
        return event

    def _claim_check(self, alert: dict, event: EventData, provider: str, pulled_at: str) -> EventData:
        body = b"".join(event.body)
        name = f"{CLAIM_CHECK_PREFIX}{self._source.id}/{hashlib.sha256(body).hexdigest()[:40]}.json"
        self._claims.write(name, body)
        pointer = orjson.dumps({
            CLAIM_CHECK_KEY: name, "id": alert.get("id"), "lastUpdateDateTime": alert.get("lastUpdateDateTime"),
            "serviceSource": alert.get("serviceSource")})
        claim_event = self._event(alert, provider, pulled_at, body=pointer)
        claim_event.properties["claim_check"] = name
        return claim_event
