"""Graph security alerts (alerts_v2) to lake rows with Panther-style p_ fields.

Entry points: `new_batch` (add alerts one by one, then take one Arrow table: the hot path) and
`normalize_alert` (one row as a dict). They import only the standard library, orjson, msgspec and pyarrow:
this runs in an Azure Function's cold start.

The names below load `normalizers.registry` on first use, so that the query side, which needs only the
canonicalisers (`normalizers.indicators`) and the view tables, starts without pyarrow and the normalizer
(`python -X importtime -c "import normalizers.core"` shows what they would cost a `graphlake search`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LOG_TYPE",
    "PROVIDERS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TABLE",
    "AlertBatch",
    "NotAnAlert",
    "new_batch",
    "normalize_alert",
    "normalize_alerts",
    "normalizer_for",
    "rows_to_table",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from normalizers import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'normalizers' has no attribute {name!r}")
