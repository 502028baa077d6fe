"""The providers by serviceSource, and the entry points `normalizers` exports (see its docstring)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import ModuleType

import pyarrow as pa

from normalizers import (
    cloud,
    cloud_apps,
    core,
    defender_xdr,
    endpoint,
    entra_id_protection,
    identity,
    office365,
    purview,
    sentinel,
)
# Some of these are here only for `normalizers` to export (see normalizers.__all__).
from normalizers.core import AlertBatch, NotAnAlert  # noqa: F401
from normalizers.names import LOG_TYPE, TABLE  # noqa: F401
from normalizers.schema import SCHEMA, SCHEMA_VERSION, rows_to_table  # noqa: F401

_PROVIDER_MODULES = (
    endpoint, identity, cloud_apps, office365, entra_id_protection, sentinel, purview, defender_xdr, cloud,
)
# serviceSource -> provider module; each module's PROVIDER says what it adds to the core.
PROVIDERS: dict[str, ModuleType] = {
    service_source: module
    for module in _PROVIDER_MODULES
    for service_source in module.PROVIDER.service_sources
}


def normalizer_for(service_source: str | None) -> ModuleType:
    """The provider module for a serviceSource; the core for unknown ones (including unknownFutureValue)."""
    return PROVIDERS.get(service_source, core) if service_source.__class__ is str else core


def new_batch(parse_time: datetime) -> AlertBatch:
    """An empty batch whose alerts are routed to their provider by serviceSource (see core.AlertBatch)."""
    return AlertBatch(parse_time, providers={source: module.PROVIDER for source, module in PROVIDERS.items()})


def normalize_alert(alert: dict, *, source_id: str, source_label: str, parse_time: datetime) -> dict:
    """One lake row for one alert version; raises NotAnAlert for input that is not a Graph alert."""
    batch = new_batch(parse_time)
    batch.add(alert, source_id=source_id, source_label=source_label)
    return batch.row(0)


def normalize_alerts(alerts: Iterable[dict], *, source_id: str, source_label: str,
                     parse_time: datetime) -> pa.Table:
    """The table of many alerts; raises NotAnAlert at the first one that is not an alert."""
    batch = new_batch(parse_time)
    for alert in alerts:
        batch.add(alert, source_id=source_id, source_label=source_label)
    return batch.table()
