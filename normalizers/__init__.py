"""Graph security alerts (alerts_v2) to lake rows with Panther-style p_ fields.

Entry points: `normalize_alert` (one alert, parsed into dicts, to one row) and `new_batch` (rows for one Arrow
table). The names below load `normalizers.core` on first use, so that the query side, which needs only the
canonicalisers (`normalizers.indicators`) and the view tables, starts without pyarrow.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "AlertBatch": "core", "NotAnAlert": "core", "new_batch": "core", "normalize_alert": "core",
    "PROVIDERS": "providers", "provider_for": "providers",
    "SCHEMA": "schema", "SCHEMA_VERSION": "schema", "rows_to_table": "schema",
    "LOG_TYPE": "names", "TABLE": "names",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f"normalizers.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'normalizers' has no attribute {name!r}")
