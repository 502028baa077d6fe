"""Graph security alerts (alerts_v2) to lake rows with Panther-style p_ fields.

Entry point: `normalize_alert`. Imports only the standard library, orjson and pyarrow: this runs in an
Azure Function's cold start.
"""

from __future__ import annotations

from datetime import datetime
from types import ModuleType

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
from normalizers.core import NotAnAlert
from normalizers.schema import LOG_TYPE, SCHEMA, SCHEMA_VERSION, TABLE, rows_to_table

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


def normalize_alert(alert: dict, *, source_id: str, source_label: str, parse_time: datetime) -> dict:
    """One lake row for one alert version; raises NotAnAlert for input that is not a Graph alert."""
    module = normalizer_for(alert.get("serviceSource")) if alert.__class__ is dict else core
    return core.normalize(
        alert, source_id=source_id, source_label=source_label, parse_time=parse_time,
        provider=module.PROVIDER,
    )


__all__ = [
    "LOG_TYPE",
    "PROVIDERS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TABLE",
    "NotAnAlert",
    "normalize_alert",
    "normalizer_for",
    "rows_to_table",
]
