"""The SQL of the lake's views, as DuckDB runs it: one job, text in, text out, so `--explain` can print it.
Spark runs the same SQL, translated (shared.read.spark).

- Every table folder is a view of its own name over its partition files. Rows are deduplicated on `p_row_id`:
  a redelivered batch, or compaction stopped between writing its file and deleting the ones it replaced, leaves
  the same row version in two files, and a reader must see it once.
- `security_alerts_latest`: the latest version of each alert, per (tenantId, serviceSource, id): two products can
  report one id, and each is an alert of its own.
- `security_alert_evidence`: one row per evidence item of every alert version, typed columns from
  `normalizers.evidence_columns`.

Every version of an alert, and every copy of a row, shares p_event_time (createdDateTime) and so its day
partition. The windows therefore partition by those columns too: it changes no result, and it lets DuckDB push a
filter on p_event_time or year/month/day through the window down to the files, so a time-bounded query reads
only its days.
"""

from __future__ import annotations

from collections.abc import Collection

from normalizers.evidence_columns import ANY, COMMON_COLUMNS, EVIDENCE_COLUMNS, ROLES_PATH
from normalizers.names import LEGACY_LOG_TYPE, LOG_TYPE
from normalizers.names import TABLE as ALERTS_TABLE

LATEST_VIEW = "security_alerts_latest"
EVIDENCE_VIEW = "security_alert_evidence"
HIVE_TYPES = "{'year': INTEGER, 'month': INTEGER, 'day': INTEGER}"
_GRAPH_TYPE_PREFIX = "#microsoft.graph.security."
_SAME_PARTITION = "p_event_time, year, month, day"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_parquet(files: str | list[str], *, row_numbers: bool = False) -> str:
    """DuckDB's scan of a table's files (a glob or a list), with the hive keys typed as integers (and with
    `row_numbers`, each row's number in its file as file_row_number)."""
    target = quote_literal(files) if isinstance(files, str) else "[" + ", ".join(map(quote_literal, files)) + "]"
    numbers = ", file_row_number = true" if row_numbers else ""
    # union_by_name: files written before a column was added still read, with nulls there.
    return (f"read_parquet({target}, hive_partitioning = true, union_by_name = true, hive_types = {HIVE_TYPES}"
            f"{numbers})")


def deduplicated(source: str, columns: set[str]) -> str:
    """SELECT over `source` that keeps one row per p_row_id (the first parsed), if the table has row ids; rows landed
    before the log type took Panther's name read with it."""
    select = "SELECT *"
    if "p_log_type" in columns:
        select = (f"SELECT * REPLACE (CASE WHEN p_log_type = {quote_literal(LEGACY_LOG_TYPE)} THEN "
                  f"{quote_literal(LOG_TYPE)} ELSE p_log_type END AS p_log_type)")
    if "p_row_id" not in columns:
        return f"{select} FROM {source}"
    keys = ", ".join(["p_row_id", *(c for c in _SAME_PARTITION.split(", ") if c in columns)])
    order = " ORDER BY p_parse_time" if "p_parse_time" in columns else ""
    return f"{select} FROM {source}\nQUALIFY row_number() OVER (PARTITION BY {keys}{order}) = 1"


def table_view(name: str, source: str, columns: set[str]) -> str:
    return f"CREATE VIEW {quote_identifier(name)} AS\n{deduplicated(source, columns)}"


def latest_version_first(columns: Collection[str] | None = None) -> str:
    """The ORDER BY that ranks an alert's versions latest first. Graph shows only an alert's current version, so
    the one the pull read last (p_pull_time) is what Graph shows now, even when a product moved lastUpdateDateTime
    backwards; versions from files (no p_pull_time) come after those, by the latest lastUpdateDateTime (one without
    it last); ties broken by p_row_id so every reader picks the same row. `columns`: those the table has, when it
    may lack some (files written before schema version 2, tables of other producers)."""
    def has(column: str) -> bool:
        return columns is None or column in columns

    keys = ["p_pull_time DESC NULLS LAST"] if has("p_pull_time") else []
    keys.append("lastUpdateDateTime DESC NULLS LAST")
    if has("p_row_id"):
        keys.append("p_row_id DESC")
    return ", ".join(keys)


def latest_version_only(columns: Collection[str], per: tuple[str, ...] = ()) -> str:
    """The QUALIFY that keeps each alert's latest version, for the latest view and the search alike; `per`: keys
    that split an alert further (a rule's matches of it); a key column the table lacks (another producer's table)
    is left out. Versions share p_event_time (createdDateTime) and so its partition; both are in the key so that a
    filter on them reaches the scan through the window."""
    key = ", ".join(c for c in ("tenantId", "serviceSource", "id", *per, *_SAME_PARTITION.split(", "))
                    if c in columns or c == "p_event_time")
    return f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {latest_version_first(columns)}) = 1"


def latest_select(columns: Collection[str]) -> str:
    """The SELECT of `security_alerts_latest` over the alert table's columns (a lake written before p_pull_time has
    none)."""
    return f"SELECT * FROM {ALERTS_TABLE}\n{latest_version_only(set(columns) | {'year', 'month', 'day'})}"


def _evidence_value(sources: list[tuple[tuple[str, ...], str]]) -> str:
    """The first non-empty value of the sources: Graph sends "" for what it does not know, and "" must not win
    over a value a later source has (a mailbox's upn over its account's empty userPrincipalName)."""
    choices = []
    for types, path in sources:
        extract = f"nullif(json_extract_string(item, {quote_literal(path)}), '')"
        if types == ANY:
            choices.append(extract)
        else:
            names = ", ".join(quote_literal(t) for t in types)
            choices.append(f"CASE WHEN evidence_type IN ({names}) THEN {extract} END")
    return choices[0] if len(choices) == 1 else "coalesce(" + ", ".join(choices) + ")"


def evidence_items(alerts: str) -> str:
    """The SELECT of `security_alert_evidence` over `alerts`, a FROM-able of alert versions: the view's own table,
    or a search's scan of the days it reads."""
    typed = [f"  {_evidence_value(sources)} AS {quote_identifier(column)}" for column, sources in EVIDENCE_COLUMNS.items()]
    common = [f"  json_extract_string(item, {quote_literal(path)}) AS {column}" for column, path in COMMON_COLUMNS.items()]
    separator = ",\n"
    return f"""WITH items AS (
  SELECT tenantId, id AS alert_id, p_row_id, lastUpdateDateTime, serviceSource, p_event_time, year, month, day,
         unnest(range(len(json_array))) AS evidence_index, unnest(json_array) AS item
  FROM (SELECT *, CAST(evidence AS JSON[]) AS json_array FROM {alerts} WHERE evidence IS NOT NULL)
), typed AS (
  SELECT *, coalesce(replace(json_extract_string(item, '$."@odata.type"'), {quote_literal(_GRAPH_TYPE_PREFIX)}, ''),
                     'unknown') AS evidence_type
  FROM items
)
SELECT tenantId, alert_id, p_row_id, lastUpdateDateTime, serviceSource, p_event_time, year, month, day,
  evidence_index, evidence_type,
{separator.join(common)},
  CAST(json_extract(item, {quote_literal(ROLES_PATH)}) AS VARCHAR[]) AS roles,
{separator.join(typed)},
  CAST(item AS VARCHAR) AS evidence
FROM typed"""


def derived_views(columns: dict[str, set[str]]) -> dict[str, str]:
    """The views beyond each table's own, by name, for the tables the lake holds (`columns`: table -> its columns):
    each view's SELECT over the table views. The one list every engine registers (shared.read.query for DuckDB,
    shared.read.spark for Spark): a view added here comes to both."""
    found: dict[str, str] = {}
    if ALERTS_TABLE in columns:
        found[LATEST_VIEW] = latest_select(columns[ALERTS_TABLE])
        found[EVIDENCE_VIEW] = evidence_items(ALERTS_TABLE)
    return found


def derived_view(name: str, select: str) -> str:
    return f"CREATE VIEW {name} AS\n{select}"
