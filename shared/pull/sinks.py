"""Where the fan-out's batches go: Event Hubs when a namespace is set, else the land stage in this process.

The one place that choice is made, for the Function App's timers, `graphlake pull`, `graphlake audit --repair` and
the demo. The in-process sink lands (and runs the rules on) each batch itself; the arrow points downstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.core.errors import ConfigError

if TYPE_CHECKING:
    from shared.core.settings import Settings
    from shared.core.storage import Store
    from shared.land.detect import Detector
    from shared.land.local_sink import InProcessSink
    from shared.pull.fanout import EventSink


def open_sink(settings: Settings, *, state: Store, detector: Detector | None, lake: Store | None = None,
              event_hub_only: bool = False) -> EventSink:
    """Event Hubs (EventHubConnection__fullyQualifiedNamespace); without it, the in-process normalizer into `lake`
    (default: LAKE_URL, opened only then) with `detector`. `event_hub_only`: no namespace is a ConfigError (the
    Function App, whose normalize_alerts lands)."""
    if settings.eventhub_namespace:
        from shared.pull.fanout import EventHubSink

        return EventHubSink(settings.eventhub_namespace)
    if event_hub_only:
        raise ConfigError("setting EventHubConnection__fullyQualifiedNamespace is not set")
    from shared.core.storage import open_store

    return open_in_process_sink(lake=lake or open_store(settings.lake_url), state=state, detector=detector)


def open_in_process_sink(*, lake: Store, state: Store, detector: Detector | None, logs_hub: str | None = None,
                         max_attempts: int = 1) -> InProcessSink:
    """The in-process normalizer alone, whatever the settings say (the demo, which has no Event Hub). `logs_hub`:
    the hub whose batches land as normalize_logs lands them (the demo's Azure Monitor records)."""
    from shared.land.local_sink import InProcessSink

    return InProcessSink(lake, state, detector, logs_hub=logs_hub, max_attempts=max_attempts)
