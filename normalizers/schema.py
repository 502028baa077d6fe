"""The one table schema of normalized Graph security alerts, and rows -> Arrow table.

The schema is fixed and explicit so that every parquet file in the lake has identical column types
whatever the alerts in it happened to contain (inference would type an all-null column as null, or a
column of numeric-looking ids as int). Graph properties keep Graph's names; Panther-style fields start
with `p_`. Changing a column means bumping SCHEMA_VERSION.
"""

from __future__ import annotations

from operator import itemgetter

import pyarrow as pa

from normalizers.indicators import INDICATOR_COLUMNS

SCHEMA_VERSION = 2

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_STRINGS = pa.list_(pa.string())

SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("providerAlertId", pa.string()),
    pa.field("incidentId", pa.string()),
    pa.field("tenantId", pa.string()),
    pa.field("title", pa.string()),
    pa.field("description", pa.string()),
    pa.field("recommendedActions", pa.string()),
    pa.field("category", pa.string()),
    pa.field("categories", _STRINGS),
    # Enums stay strings: Graph adds members (behind `Prefer: include-unknown-enum-members`).
    pa.field("severity", pa.string()),
    pa.field("status", pa.string()),
    pa.field("classification", pa.string()),
    pa.field("determination", pa.string()),
    pa.field("serviceSource", pa.string()),
    pa.field("detectionSource", pa.string()),
    pa.field("productName", pa.string()),
    pa.field("detectorId", pa.string()),
    pa.field("alertPolicyId", pa.string()),
    pa.field("assignedTo", pa.string()),
    pa.field("actorDisplayName", pa.string()),
    pa.field("threatDisplayName", pa.string()),
    pa.field("threatFamilyName", pa.string()),
    pa.field("investigationState", pa.string()),
    pa.field("alertWebUrl", pa.string()),
    pa.field("incidentWebUrl", pa.string()),
    pa.field("mitreTechniques", _STRINGS),
    pa.field("systemTags", _STRINGS),
    pa.field("createdDateTime", _TIMESTAMP),
    pa.field("lastUpdateDateTime", _TIMESTAMP),
    pa.field("resolvedDateTime", _TIMESTAMP),
    pa.field("firstActivityDateTime", _TIMESTAMP),
    pa.field("lastActivityDateTime", _TIMESTAMP),
    # JSON text: `evidence` exactly as received (unknown types and @odata.type included).
    pa.field("comments", pa.string()),
    pa.field("evidence", pa.string()),
    pa.field("additionalData", pa.string()),
    pa.field("customDetails", pa.string()),
    # Top-level properties without a column, so a new Graph property is never lost; null when none.
    pa.field("p_unmapped", pa.string()),
    pa.field("p_log_type", pa.string(), nullable=False),
    pa.field("p_row_id", pa.string(), nullable=False),
    pa.field("p_event_time", _TIMESTAMP, nullable=False),
    pa.field("p_parse_time", _TIMESTAMP, nullable=False),
    # When the pull read this version from Graph (null for versions from files): what Graph showed last is the
    # latest, even when a product moves lastUpdateDateTime backwards. Added in schema version 2.
    pa.field("p_pull_time", _TIMESTAMP),
    pa.field("p_source_id", pa.string()),
    pa.field("p_source_label", pa.string()),
    pa.field("p_schema_version", pa.int32(), nullable=False),
    # Indicator lists: canonical (see indicators.py), deduplicated, sorted; null when empty, as Panther
    # omits them.
    *(pa.field(name, _STRINGS) for name in INDICATOR_COLUMNS),
])

# Columns whose values repeat across alerts: dictionary encoding pays for them. The long unique JSON and
# text columns are left plain, where trying a dictionary first only costs time.
DICTIONARY_COLUMNS = [
    "tenantId", "category", "severity", "status", "classification", "determination", "serviceSource",
    "detectionSource", "productName", "detectorId", "alertPolicyId", "assignedTo", "investigationState",
    "p_log_type", "p_source_id", "p_source_label",
]
# Min/max statistics let engines skip row groups on ids, times and enums; on JSON and free text they
# only cost time and bytes.
STATISTICS_COLUMNS = [
    name for name in SCHEMA.names
    if name not in ("description", "recommendedActions", "comments", "evidence", "additionalData",
                    "customDetails", "p_unmapped")
]
# Keyword arguments for pyarrow.parquet.write_table / ParquetWriter that suit this table.
PARQUET_WRITE_OPTIONS = {
    "compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS, "write_statistics": STATISTICS_COLUMNS,
}


def rows_to_table(rows: list[dict], schema: pa.Schema = SCHEMA) -> pa.Table:
    """Rows (keys exactly the schema's names: `normalize_alert`'s, or the log tables' with their schema) as one
    table with that schema."""
    if not rows:
        return schema.empty_table()
    # Each row's values in the schema's order, transposed into columns.
    columns = zip(*map(itemgetter(*schema.names), rows))
    return pa.Table.from_arrays(
        [pa.array(values, type=field.type) for values, field in zip(columns, schema)], schema=schema,
    )
