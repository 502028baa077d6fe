"""The one schema of the Azure Monitor log tables (`entra_signin_logs`, `entra_audit_logs`, `entra_risk_events`,
`azure_activity_logs`): Azure Monitor's common envelope typed, `properties` whole as JSON text, Panther's p_ fields.

One schema for the four tables because the records share their envelope and differ in `properties`, which is kept
whole: a category Microsoft adds, or a property it adds to one, needs no column. Changing a column means bumping
SCHEMA_VERSION.
"""

from __future__ import annotations

import pyarrow as pa

from normalizers.indicators import INDICATOR_COLUMNS

SCHEMA_VERSION = 1

_TIMESTAMP = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema([
    pa.field("time", _TIMESTAMP),
    pa.field("category", pa.string()),
    pa.field("operationName", pa.string()),
    pa.field("operationVersion", pa.string()),
    # Strings although Entra writes numbers at times (resultType 50126, Level 4): one type whatever the writer did.
    pa.field("resultType", pa.string()),
    pa.field("resultSignature", pa.string()),
    pa.field("resultDescription", pa.string()),
    pa.field("durationMs", pa.int64()),
    pa.field("callerIpAddress", pa.string()),
    pa.field("correlationId", pa.string()),
    # A display name in Entra's records, an object (claims, authorization) in the Activity log's: the object as
    # JSON text.
    pa.field("identity", pa.string()),
    pa.field("level", pa.string()),
    pa.field("location", pa.string()),
    pa.field("tenantId", pa.string()),
    pa.field("resourceId", pa.string()),
    # JSON text: the record's properties, every one of them, keys sorted (the row id hashes the same text).
    pa.field("properties", pa.string()),
    # Top-level properties without a column, and envelope values that could not be typed; null when none.
    pa.field("p_unmapped", pa.string()),
    pa.field("p_log_type", pa.string(), nullable=False),
    pa.field("p_row_id", pa.string(), nullable=False),
    pa.field("p_event_time", _TIMESTAMP, nullable=False),
    pa.field("p_parse_time", _TIMESTAMP, nullable=False),
    pa.field("p_source_id", pa.string()),
    pa.field("p_source_label", pa.string()),
    pa.field("p_schema_version", pa.int32(), nullable=False),
    *(pa.field(name, pa.list_(pa.string())) for name in INDICATOR_COLUMNS),
])

DICTIONARY_COLUMNS = ["category", "operationName", "operationVersion", "resultType", "resultSignature", "level",
                      "location", "tenantId", "p_log_type", "p_source_id", "p_source_label"]
STATISTICS_COLUMNS = [name for name in SCHEMA.names if name not in ("properties", "identity", "p_unmapped",
                                                                     "resultDescription")]
PARQUET_WRITE_OPTIONS = {
    "compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS, "write_statistics": STATISTICS_COLUMNS,
}
