"""One Azure Monitor record (Entra sign-in, audit and risk logs, the Activity log) to one row of its table.

The record's `category` routes it (`ROUTES`, from the mapping modules `entra_signin`, `entra_audit`, `entra_risk`,
`azure_activity`); `ENVELOPE` types the common envelope, whatever case the writer gave its keys (`Level` and
`level` both occur); `properties` is kept whole as JSON text, keys sorted; each mapping module's `INDICATORS` table
(the evidence tables' format) says which values are indicators, canonicalised by the alerts' own rules
(`normalizers.core`).

`p_row_id`: Azure Monitor records carry no one id (sign-ins and audits have `properties.id`, the Activity log
and RiskyUsers do not), so the row id is a hash of the whole record in a canonical form (keys sorted, no
whitespace): what identifies a record is all it says. A re-delivered record, or the same record read again from an
archive, has the same id; two records differing in anything (a retried operation's later status) are two rows.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import ModuleType

import orjson
import pyarrow as pa

from normalizers import azure_activity, entra_audit, entra_risk, entra_signin
from normalizers.core import canonical_lists
from shared.core.json_text import as_text, canonical_json, json_text
from normalizers.evidence import Found, check_table, table_indicators
from normalizers.log_schema import SCHEMA, SCHEMA_VERSION
from normalizers.schema import rows_to_table
from shared.core.timestamps import parse_graph_time

FAMILIES: tuple[ModuleType, ...] = (entra_signin, entra_audit, entra_risk, azure_activity)
TABLES = tuple(family.TABLE for family in FAMILIES)
# Categories are matched without case: Microsoft spells them one way, but archives and exports re-case keys.
ROUTES: dict[str, ModuleType] = {category.lower(): family for family in FAMILIES for category in family.CATEGORIES}

STRING, TIMESTAMP, INTEGER = "string", "timestamp", "integer"
# The envelope's keys, lower-cased, -> (column, how it is typed). STRING: a string as is, any other value as its JSON
# text (Level 4 -> "4", the Activity log's identity object -> its JSON).
ENVELOPE = {name.lower(): (name, kind) for name, kind in (
    ("time", TIMESTAMP), ("category", STRING), ("operationName", STRING), ("operationVersion", STRING),
    ("resultType", STRING), ("resultSignature", STRING), ("resultDescription", STRING), ("durationMs", INTEGER),
    ("callerIpAddress", STRING), ("correlationId", STRING), ("identity", STRING), ("level", STRING),
    ("location", STRING), ("tenantId", STRING), ("resourceId", STRING), ("properties", STRING),
)}
# When `time` is missing or unreadable: the record's own time in `properties`, never the parse time, so every
# delivery of a record lands in the same day partition.
FALLBACK_TIMES = ("createdDateTime", "activityDateTime", "detectedDateTime", "eventTimestamp")

_EMPTY_ROW = dict.fromkeys(SCHEMA.names)
# Each key a record spells, looked up once: records repeat the same dozen keys millions of times.
_KEYS: dict[str, tuple[str, str] | None] = {}
_KEYS_CACHED = 4096  # a bound, for records of odd keys


def _envelope_key(key: str) -> tuple[str, str] | None:
    try:
        return _KEYS[key]
    except KeyError:
        mapped = ENVELOPE.get(key.lower()) if type(key) is str else None
        if len(_KEYS) < _KEYS_CACHED:
            _KEYS[key] = mapped
        return mapped

for _family in FAMILIES:
    check_table(_family.INDICATORS, _family.__name__)


class NotARecord(ValueError):
    """Not an Azure Monitor record graphlake lands (not an object, no or an unknown category, no time)."""


def lands(category: str) -> bool:
    """Whether records of this category have a table."""
    return category.lower() in ROUTES


def route(category: object) -> ModuleType:
    """The mapping module of a record's table by its category; NotARecord saying why there is none."""
    if type(category) is not str or not category:
        raise NotARecord("the record has no category (Azure Monitor records name theirs, e.g. SignInLogs)")
    family = ROUTES.get(category.lower())
    if family is None:
        raise NotARecord(f"category {category!r} is not one graphlake lands (it lands "
                         f"{', '.join(c for f in FAMILIES for c in f.CATEGORIES)})")
    return family


def normalize_record(record: object, *, source_id: str | None, source_label: str,
                     parse_time: datetime) -> tuple[str, dict]:
    """(table, row) of one record; the row's keys are exactly SCHEMA's names, in its order. NotARecord for input
    that is not a record graphlake lands. `source_id` None takes the record's tenantId."""
    if type(record) is not dict:
        raise NotARecord(f"expected a JSON object (an Azure Monitor record), got {type(record).__name__}")
    row = _EMPTY_ROW.copy()
    typed: dict = {}  # the envelope under its canonical names, for the indicator tables
    unmapped: dict = {}
    properties: tuple[str, bytes] | None = None  # its key and canonical JSON, which the row id reuses
    for key, value in record.items():
        mapped = _envelope_key(key)
        if mapped is None or (value is not None and mapped[0] in typed):
            unmapped[key] = value  # a property without a column, or a second spelling of one
            continue
        if value is None:
            continue
        column, kind = mapped
        typed[column] = value
        if kind is TIMESTAMP:
            row[column] = parse_graph_time(value)
        elif kind is INTEGER:
            row[column] = _integer(value)
        elif column == "properties" and type(value) is not str:
            properties = key, canonical_json(value)
            row[column] = properties[1].decode()
        else:
            row[column] = as_text(value)
        if row[column] is None:
            unmapped[key] = value  # kept as sent, not nulled away
    family = route(typed.get("category"))
    row["p_unmapped"] = json_text(unmapped) if unmapped else None

    event_time = row["time"] or _fallback_time(typed.get("properties"))
    if event_time is None:
        raise NotARecord(f"{row['category']} record has no readable time (time {record.get('time')!r})")
    row["p_log_type"] = family.LOG_TYPE
    row["p_row_id"] = row_id(record, properties)
    row["p_event_time"] = event_time
    row["p_parse_time"] = parse_time if parse_time.tzinfo is not None else parse_time.replace(tzinfo=UTC)
    row["p_source_id"] = source_id or row["tenantId"] or ""
    row["p_source_label"] = source_label
    row["p_schema_version"] = SCHEMA_VERSION
    found: Found = []
    table_indicators(typed, family.INDICATORS, found)
    row.update(canonical_lists(found))
    return family.TABLE, row


def row_id(record: dict, properties: tuple[str, bytes] | None = None) -> str:
    """Deterministic p_row_id: blake2b-128 of the record's canonical JSON (keys sorted at every level, no whitespace).
    `properties`: the record's properties key and their canonical JSON, already made for the column."""
    try:
        if properties is None:
            canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        else:  # the properties' text is spliced in, not encoded a second time
            key, text = properties
            canonical = orjson.dumps({**record, key: orjson.Fragment(text)}, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, which orjson refuses
        canonical = canonical_json(record)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def _integer(value: object) -> int | None:
    """durationMs as Microsoft writes it: a number, or the number's text ("0"); None for anything else."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str:
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _fallback_time(properties: object) -> datetime | None:
    if type(properties) is not dict:
        return None
    return next((t for name in FALLBACK_TIMES if (t := parse_graph_time(properties.get(name))) is not None), None)


class LogBatch:
    """The rows of a batch of records, per table: `add` each record, then take `tables()`."""

    def __init__(self, parse_time: datetime) -> None:
        self.parse_time = parse_time
        self.rows: dict[str, dict[str, dict]] = {}  # table -> p_row_id -> row; a repeated record replaces itself

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def add(self, record: object, *, source_id: str | None, source_label: str) -> bool:
        """Normalize one record into the batch; False when the batch held it already (a duplicate)."""
        table, row = normalize_record(record, source_id=source_id, source_label=source_label,
                                      parse_time=self.parse_time)
        rows = self.rows.setdefault(table, {})
        fresh = row["p_row_id"] not in rows
        rows[row["p_row_id"]] = row
        return fresh

    def tables(self) -> dict[str, pa.Table]:
        """Each table's rows in the lake's order, (p_event_time, p_row_id)."""
        return {table: rows_to_table(sorted(rows.values(), key=_lake_order), SCHEMA)
                for table, rows in sorted(self.rows.items())}


def _lake_order(row: dict) -> tuple:
    return row["p_event_time"], row["p_row_id"]

