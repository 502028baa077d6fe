"""The shared normalizer: Graph alert properties to columns, Panther p_ fields, indicator extraction.

Read top to bottom it is the mapping: which Graph properties become which typed column, how each
indicator kind found in evidence lands in the p_any lists. Provider modules only say which free-form
dictionaries of their alerts hold indicators too (see `Provider`).

Two ways in, one mapping. `AlertBatch.add` takes an alert as a dict and is the definition: whatever an
alert holds, it decides the row. `AlertBatch.add_json` takes the JSON as it arrived and, for alerts shaped
as Graph documents them (nearly all), gives the same row faster: msgspec decodes only the properties this
module maps and the evidence properties the table reads (evidence.Scanner.evidence_decoder), so the rest is
skipped rather than built into dicts and dumped back to text; anything else it hands back to `add`.
tests/test_normalizers.py holds the two to the same rows.

Hot-path notes (the normalizer must stay a small multiple of orjson's parse time; bench/bench_normalize.py
measures it): `AlertBatch` keeps one tuple per alert and builds each Arrow column straight from them, with
no dict per row; property names are looked up with orjson's own key objects (evidence.parsed_key); each raw
indicator value is canonicalised once and memoized per kind (alerts repeat the same hosts, users and
addresses), looked up during the evidence walk; timestamps in Graph's form are read with no Python call per
value.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from normalizers import indicators
from normalizers.evidence import (
    ACTOR_ID,
    DNS_DOMAIN,
    EMAIL,
    HASH,
    HOST,
    IP,
    SENDER_EMAIL,
    UPN,
    URL,
    USERNAME,
    Scanner,
    Untyped,
    parsed_key,
)
from normalizers.names import LOG_TYPE
from normalizers.schema import SCHEMA, SCHEMA_VERSION


class NotAnAlert(ValueError):
    """The input is not a Graph alert (not an object, or no id / timestamps); the caller quarantines it."""


# --- Graph properties, by the column type they land in (names kept exactly as Graph spells them) ---
STRING_PROPERTIES = (
    "id", "providerAlertId", "incidentId", "tenantId", "title", "description", "recommendedActions",
    "category", "severity", "status", "classification", "determination", "serviceSource",
    "detectionSource", "productName", "detectorId", "alertPolicyId", "assignedTo", "actorDisplayName",
    "threatDisplayName", "threatFamilyName", "investigationState", "alertWebUrl", "incidentWebUrl",
)
STRING_LIST_PROPERTIES = ("categories", "mitreTechniques", "systemTags")
TIMESTAMP_PROPERTIES = (
    "createdDateTime", "lastUpdateDateTime", "resolvedDateTime", "firstActivityDateTime",
    "lastActivityDateTime",
)
# Kept as JSON text: evidence is polymorphic and open-ended, and must survive exactly (unknown types too).
JSON_PROPERTIES = ("comments", "evidence", "additionalData", "customDetails")

# The same names as orjson's own key objects (see evidence.parsed_key): equal strings, faster lookups.
STRING_PROPERTIES, STRING_LIST_PROPERTIES, TIMESTAMP_PROPERTIES, JSON_PROPERTIES = (
    tuple(map(parsed_key, names))
    for names in (STRING_PROPERTIES, STRING_LIST_PROPERTIES, TIMESTAMP_PROPERTIES, JSON_PROPERTIES)
)
_ID, _ODATA_TYPE, _CREATED, _LAST_UPDATE, _SERVICE_SOURCE, _EVIDENCE = map(parsed_key, (
    "id", "@odata.type", "createdDateTime", "lastUpdateDateTime", "serviceSource", "evidence"))

# `@odata.type` of the alert itself carries no information beyond "this is an alert", so it is not unmapped.
_ALERT_ODATA_TYPES = frozenset({"#microsoft.graph.security.alert", "microsoft.graph.security.alert"})
_MAPPED_PROPERTIES = frozenset(
    STRING_PROPERTIES + STRING_LIST_PROPERTIES + TIMESTAMP_PROPERTIES + JSON_PROPERTIES + (_ODATA_TYPE,)
)

# An alert whose properties are all mapped and have the types Graph documents, as msgspec decodes it from
# JSON (see AlertBatch.add_json): the JSON properties stay the text they arrived as, undecoded.
_NO_JSON = msgspec.Raw()
_TypedAlert = msgspec.defstruct(
    "TypedAlert",
    [(name, str | None, None) for name in STRING_PROPERTIES + TIMESTAMP_PROPERTIES]
    + [(name, list[str] | None, None) for name in STRING_LIST_PROPERTIES]
    + [(name, msgspec.Raw, _NO_JSON) for name in JSON_PROPERTIES]
    + [("odata_type", str | None, None)],
    rename={"odata_type": _ODATA_TYPE}, forbid_unknown_fields=True, gc=False)
_decode_typed_alert = msgspec.json.Decoder(_TypedAlert).decode

# No top-level string property is scanned for indicators: assignedTo names the analyst owning the alert
# (or "Automation"), and alertWebUrl/incidentWebUrl link every alert to the portal. As pivots they would
# match everything; filter on those columns instead.


@dataclass(frozen=True)
class Provider:
    """What one provider family adds to the core mapping."""

    service_sources: tuple[str, ...]
    # Free-form dictionaries whose keys the alert's author chose (Sentinel custom details, DLP match data):
    # read by key name like unknown evidence. Providers whose indicators all sit in evidence list none.
    scanned_by_key_name: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "scanned_by_key_name", tuple(map(parsed_key, self.scanned_by_key_name)))


# Unknown providers (new serviceSource values, unknownFutureValue): we cannot know where they keep
# indicators, so every free-form dictionary is read by key name.
DEFAULT_PROVIDER = Provider(service_sources=(), scanned_by_key_name=("additionalData", "customDetails"))
PROVIDER = DEFAULT_PROVIDER  # So the core answers normalizer_for() like any provider module.

# --- Indicator kinds to p_any lists: slot numbers index indicators.INDICATOR_COLUMNS ---
# A resolver gives the canonical values of one raw value, flat: slot, value, slot, value... One tuple per
# memoized value and nothing nested: fewer objects to allocate, and for the garbage collector to visit.
(_IP_SLOT, _DOMAIN_SLOT, _USERNAME_SLOT, _EMAIL_SLOT, _MD5_SLOT, _SHA1_SLOT, _SHA256_SLOT, _URL_SLOT,
 _ACTOR_SLOT) = range(len(indicators.INDICATOR_COLUMNS))
_HASH_SLOTS = {"md5": _MD5_SLOT, "sha1": _SHA1_SLOT, "sha256": _SHA256_SLOT}
_Found = tuple  # (slot, canonical value) pairs, flattened


def _ip(raw: str) -> _Found:
    ip = indicators.canonical_ip(raw)
    return (_IP_SLOT, ip) if ip else ()


def _host(raw: str) -> _Found:
    ip = indicators.canonical_ip(raw)
    if ip:
        return (_IP_SLOT, ip)
    domain = indicators.canonical_domain(raw)
    return (_DOMAIN_SLOT, domain) if domain else ()


def _dns_domain(raw: str) -> _Found:
    domain = indicators.canonical_domain(raw)
    return (_DOMAIN_SLOT, domain) if domain and "." in domain else ()


def _url(raw: str) -> _Found:
    parsed = indicators.split_url(raw)
    if parsed is None:
        return ()
    url, host, host_is_ip = parsed
    return (_URL_SLOT, url, _IP_SLOT if host_is_ip else _DOMAIN_SLOT, host)


def _email(raw: str) -> _Found:
    email = indicators.canonical_email(raw)
    return (_EMAIL_SLOT, email) if email else ()


def _sender_email(raw: str) -> _Found:
    email = indicators.canonical_email(raw)
    return (_EMAIL_SLOT, email, _DOMAIN_SLOT, email.rpartition("@")[2]) if email else ()


def _upn(raw: str) -> _Found:
    username = indicators.canonical_username(raw)
    if username is None:
        return ()
    email = indicators.canonical_email(raw)
    return (_USERNAME_SLOT, username, _EMAIL_SLOT, email) if email else (_USERNAME_SLOT, username)


def _username(raw: str) -> _Found:
    username = indicators.canonical_username(raw)
    return (_USERNAME_SLOT, username) if username else ()


def _hash(raw: str) -> _Found:
    hashed = indicators.canonical_hash(raw)
    return (_HASH_SLOTS[hashed[0]], hashed[1]) if hashed else ()


def _actor_id(raw: str) -> _Found:
    actor_id = indicators.canonical_actor_id(raw)
    return (_ACTOR_SLOT, actor_id) if actor_id else ()


_RESOLVERS = {
    IP: _ip,
    HOST: _host,
    DNS_DOMAIN: _dns_domain,
    URL: _url,
    EMAIL: _email,
    SENDER_EMAIL: _sender_email,
    UPN: _upn,
    USERNAME: _username,
    HASH: _hash,
    ACTOR_ID: _actor_id,
}

_UTC = timezone.utc
# Timestamps are kept as microseconds since the epoch: Arrow takes integers for a timestamp column as they
# are, while it asks every aware datetime for its utcoffset() by attribute name (measured: 5x the parse).
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MICROSECOND = timedelta(microseconds=1)
_from_iso_format = datetime.fromisoformat
_orjson_dumps = orjson.dumps
_LIST_OR_NONE = frozenset({list, type(None)})
_ROW_TEMPLATE = dict.fromkeys(SCHEMA.names)
_TIMESTAMP = SCHEMA.field("createdDateTime").type


_CACHE_LIMIT = 8192  # Values per memo, per indicator kind (see _Memo).


class _Memo(dict):
    """Raw value -> what its resolver makes of it, for one indicator kind: each value canonicalised once.

    Alerts repeat the same hosts, users and addresses, so most lookups are hits. Bounded by clearing: cheaper
    than LRU bookkeeping on every hit, and a refill costs one canonicalisation per distinct value. One memo
    per kind, so that a flood of values that never recur (file hashes, mostly) clears only its own memo, not
    the recurring ones; ten kinds of at most 8192 values keep a long-running worker's memos to about 25 MB.
    """

    __slots__ = ("_resolver",)

    def __init__(self, resolver: Callable[[str], _Found]) -> None:
        super().__init__()
        self._resolver = resolver
        self.clear()

    def clear(self) -> None:
        super().clear()
        self[None] = ()  # An absent property is looked up like any value, and adds nothing.

    def __missing__(self, raw: object) -> _Found:
        if type(raw) is not str:
            return ()  # A number or a boolean where Graph documents text: no indicator.
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        resolved = self[raw] = self._resolver(raw)
        return resolved


_MEMOS = {kind: _Memo(resolver) for kind, resolver in _RESOLVERS.items()}
_SCANNER = Scanner(_MEMOS)
_decode_typed_evidence = _SCANNER.evidence_decoder.decode


def clear_memos() -> None:
    """Forget every canonical value memoized so far, as a fresh worker starts (the benchmark's runs do)."""
    for memo in _MEMOS.values():
        memo.clear()


def _parse_timestamp(raw: object) -> datetime | None:
    """UTC datetime from Graph's ISO 8601 text (0-7 fractional digits, 'Z'); None if unparseable."""
    if raw.__class__ is not str:
        return None
    try:
        # Python 3.11 reads 'Z' and any number of fractional digits (truncating past microseconds).
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        text = raw.strip()
        if text != raw:
            return _parse_timestamp(text)
        if "." not in text:
            return None
        # Over-long or odd fractions ("...27.12345678901Z"): keep microseconds, drop the rest.
        head, _, fraction = text.partition(".")
        digits = len(fraction) - len(fraction.lstrip("0123456789"))
        try:
            parsed = datetime.fromisoformat(f"{head}.{fraction[:min(digits, 6)] or '0'}{fraction[digits:]}")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    return parsed if parsed.tzinfo is _UTC else parsed.astimezone(_UTC)


def _graph_timestamps(raw_timestamps: list) -> list[int | None]:
    """Microseconds since the epoch of timestamps in Graph's own form ('Z', or any offset), with no Python
    call per value: subtracting the aware epoch gives the UTC instant whatever the offset, as
    _parse_timestamp does. Raises TypeError or ValueError for anything else."""
    return [None if raw is None else (_from_iso_format(raw) - _EPOCH) // _MICROSECOND for raw in raw_timestamps]


def _json_text(raw: msgspec.Raw) -> str | None:
    text = str(raw, "utf-8")
    return None if text == "null" else text


def _dumps(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library keeps them exactly.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _as_string(value: object) -> str:
    """A scalar where Graph documents a string (e.g. a numeric incidentId) as its JSON text."""
    return value if value.__class__ is str else _dumps(value)


def _as_string_list(value: object) -> list[str]:
    if value.__class__ is not list:
        value = [value]
    return [item if item.__class__ is str else _dumps(item) for item in value if item is not None]


def row_id(tenant_id: str | None, alert_id: str, last_update: str | None) -> str:
    """Deterministic p_row_id: one id per alert version, so a re-delivered version deduplicates."""
    key = f"{tenant_id or ''}\x1f{alert_id}\x1f{last_update or ''}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


class AlertBatch:
    """One batch of alerts on their way to one Arrow table: `add` each alert, then take `table()` once.

    `add` (and `add_json`) does all the work on one alert and keeps only its row, as a tuple in _ROW_COLUMNS
    order: right after the alert is parsed, its objects are still in the CPU cache, and the caller can drop the
    alert while they are. (Reading the batch's dicts a column at a time later costs a cache miss per
    value: measured slower than the per-row work it saves.) `table` transposes the rows in C and builds
    each Arrow array from its column, with no dict per row to build and take apart again. `row(i)` gives
    the same values as a dict in SCHEMA order, for `normalize_alert`. An `add` that raises leaves the batch
    as it was.
    """

    def __init__(self, parse_time: datetime, providers: Mapping[str, Provider] | None = None) -> None:
        self.parse_time = parse_time if parse_time.tzinfo is not None else parse_time.replace(tzinfo=_UTC)
        self._providers = providers or {}
        self._rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, alert: dict, *, source_id: str | None, source_label: str,
            provider: Provider | None = None) -> str:
        """Normalize one version of one Graph alert into the batch; return its p_row_id.

        Raises NotAnAlert for input that is not a Graph alert. `source_id` None takes the alert's tenantId.
        `provider` defaults to the one registered for the alert's serviceSource, else DEFAULT_PROVIDER.
        """
        if type(alert) is not dict:
            raise NotAnAlert(f"expected a JSON object, got {type(alert).__name__}")
        get = alert.get
        alert_id = get(_ID)
        if type(alert_id) is not str or not alert_id:
            raise NotAnAlert("alert has no id")
        odata_type = get(_ODATA_TYPE)
        if odata_type is not None and odata_type not in _ALERT_ODATA_TYPES:
            raise NotAnAlert(f"@odata.type is {odata_type!r}, not a security alert")
        last_update_raw = get(_LAST_UPDATE)
        created_raw = get(_CREATED)
        if not last_update_raw and not created_raw:
            raise NotAnAlert(f"alert {alert_id} has neither lastUpdateDateTime nor createdDateTime")
        if provider is None:
            provider = self._provider_of(get(_SERVICE_SOURCE))

        # String and string-list properties are kept as Graph sent them; table() checks their types a column
        # at a time (a numeric incidentId is rare) and row() converts them one by one.
        strings = list(map(get, STRING_PROPERTIES))
        string_lists = list(map(get, STRING_LIST_PROPERTIES))

        raw_timestamps = list(map(get, TIMESTAMP_PROPERTIES))
        unparseable = None
        try:
            timestamps = _graph_timestamps(raw_timestamps)
        except (TypeError, ValueError):  # Not a string, no time zone, padded, an odd fraction, or not a time.
            timestamps = [None if parsed is None else (parsed - _EPOCH) // _MICROSECOND
                          for parsed in map(_parse_timestamp, raw_timestamps)]
            if timestamps.count(None) != raw_timestamps.count(None):
                unparseable = {name: raw
                               for name, raw, parsed in zip(TIMESTAMP_PROPERTIES, raw_timestamps, timestamps)
                               if raw is not None and parsed is None}

        json_values = list(map(get, JSON_PROPERTIES))
        try:  # _dumps inlined: this is most of the JSON text there is.
            json_texts = [None if value is None else _orjson_dumps(value).decode() for value in json_values]
        except TypeError:  # An integer beyond 64 bits: see _dumps.
            json_texts = [None if value is None else _dumps(value) for value in json_values]

        if unparseable is None and alert.keys() <= _MAPPED_PROPERTIES:
            unmapped = None
        else:
            unmapped_values = {key: value for key, value in alert.items() if key not in _MAPPED_PROPERTIES}
            if unparseable:
                unmapped_values.update(unparseable)  # A timestamp we could not read is kept, not nulled away.
            unmapped = _dumps(unmapped_values)

        found: list = []  # slot, canonical value, slot, canonical value... of every indicator, repeats included
        evidence = get(_EVIDENCE)
        if type(evidence) is list:
            _SCANNER.scan_evidence(evidence, found)
        for name in provider.scanned_by_key_name:
            value = get(name)
            if value:
                _SCANNER.scan_by_key_name(value, None, found, 0)
        return self._append(alert_id, strings, string_lists, timestamps, json_texts, unmapped,
                            last_update_raw or created_raw, found, source_id, source_label)

    def add_json(self, body: bytes, *, source_id: str | None, source_label: str) -> str | None:
        """add() for one alert's JSON as it arrived, when it has the shape Graph documents; else None.

        None means "parse it and add() the dict", which decides what an unusual alert becomes: a property
        this module does not map, a value of another type than Graph documents, evidence of a type the table
        lacks, an odd timestamp, something that is not an alert, or not JSON. Everything else, the great
        majority, is decoded by msgspec straight into the values the row keeps: the JSON properties stay the
        text they arrived as, and evidence is decoded a second time into structs holding only the table's
        properties (evidence.Scanner.evidence_decoder), so the dicts of everything the row does not read are
        never built. For JSON as orjson writes it (what the pull sends) the row is the same as add()'s;
        tests/test_normalizers.py holds the two paths to that.
        """
        try:
            alert = _decode_typed_alert(body)
        except msgspec.DecodeError:  # ValidationError included.
            return None
        alert_id = alert.id
        if not alert_id or (alert.odata_type is not None and alert.odata_type not in _ALERT_ODATA_TYPES):
            return None
        last_update_raw = alert.lastUpdateDateTime
        created_raw = alert.createdDateTime
        if not last_update_raw and not created_raw:
            return None
        try:
            timestamps = _graph_timestamps(_typed_timestamps(alert))
        except (TypeError, ValueError):  # No time zone, or not a time: _parse_timestamp decides.
            return None
        try:
            json_texts = [None if raw is _NO_JSON else _json_text(raw) for raw in _typed_json(alert)]
        except UnicodeDecodeError:  # msgspec does not check the text it leaves undecoded.
            return None

        found: list = []
        evidence = json_texts[_EVIDENCE_INDEX]
        if evidence is not None:
            try:
                _SCANNER.scan_typed(_decode_typed_evidence(evidence), found)
            except (msgspec.DecodeError, Untyped):
                return None
        for name in self._provider_of(alert.serviceSource).scanned_by_key_name:
            text = json_texts[JSON_PROPERTIES.index(name)]
            if text is not None:
                value = orjson.loads(text)  # Valid JSON: msgspec has read it.
                if value:
                    _SCANNER.scan_by_key_name(value, None, found, 0)
        return self._append(alert_id, _typed_strings(alert), _typed_string_lists(alert), timestamps, json_texts,
                            None, last_update_raw or created_raw, found, source_id, source_label)

    def _provider_of(self, service_source: object) -> Provider:
        return (self._providers.get(service_source, DEFAULT_PROVIDER) if type(service_source) is str
                else DEFAULT_PROVIDER)

    def _append(self, alert_id: str, strings: Sequence, string_lists: Sequence, timestamps: list, json_texts: list,
                unmapped: str | None, version: object, found: list, source_id: str | None,
                source_label: str) -> str:
        """Keep one alert's row; `found` is the flat slot, value list of its indicators, repeats included."""
        tenant_id = strings[_TENANT_ID]
        if tenant_id is not None:
            tenant_id = _as_string(tenant_id)
        p_row_id = row_id(tenant_id, alert_id, _as_string(version))
        per_column: list[set[str] | None] = [None] * len(indicators.INDICATOR_COLUMNS)
        pairs = iter(found)
        for slot, value in zip(pairs, pairs):
            values = per_column[slot]
            if values is None:
                per_column[slot] = {value}
            else:
                values.add(value)

        self._rows.append((
            *strings, *string_lists, *timestamps, *json_texts, unmapped, p_row_id,
            source_id or tenant_id or "", source_label,
            *[None if values is None else sorted(values) for values in per_column],
        ))
        return p_row_id

    def row(self, index: int) -> dict:
        """The row of the index-th alert added, keys exactly SCHEMA's names."""
        row = _ROW_TEMPLATE.copy()  # Ordered like SCHEMA from the start.
        row.update(zip(_ROW_COLUMNS, self._rows[index]))
        for name in STRING_PROPERTIES:
            if row[name] is not None:
                row[name] = _as_string(row[name])
        for name in STRING_LIST_PROPERTIES:
            if row[name] is not None:
                row[name] = _as_string_list(row[name])
        for name in TIMESTAMP_PROPERTIES:
            if row[name] is not None:
                row[name] = _EPOCH + timedelta(microseconds=row[name])
        created = row["createdDateTime"]
        row["p_event_time"] = created if created is not None else self.parse_time
        row["p_parse_time"] = self.parse_time
        row["p_log_type"] = LOG_TYPE
        row["p_schema_version"] = SCHEMA_VERSION
        return row

    def in_event_time_order(self, indices: Sequence[int] | None = None) -> list[int]:
        """The indices (default: all) ordered by p_event_time, then p_row_id: the order the lake stores rows
        in (shared.lake.write_table), so that a table taken in it needs no sort there."""
        rows, parse_time = self._rows, (self.parse_time - _EPOCH) // _MICROSECOND

        def event_time_and_row_id(index: int) -> tuple[int, str]:
            row = rows[index]
            created = row[_CREATED_INDEX]
            return (parse_time if created is None else created), row[_ROW_ID_INDEX]

        return sorted(range(len(rows)) if indices is None else indices, key=event_time_and_row_id)

    def table(self, indices: Sequence[int] | None = None) -> pa.Table:
        """The batch (or the alerts at `indices`, in that order) as one table with SCHEMA."""
        rows = self._rows if indices is None else [self._rows[index] for index in indices]
        if not rows:
            return SCHEMA.empty_table()
        columns = {}
        for name, column_type, values in zip(_ROW_COLUMNS, _ROW_TYPES, zip(*rows)):
            if name in _STRING_COLUMNS:
                columns[name] = _string_array(values)
            elif name in _STRING_LIST_COLUMNS:
                columns[name] = _string_list_array(values)
            else:
                columns[name] = pa.array(values, type=column_type)
        # The columns every row has the same way: computed once per batch, in Arrow.
        parse_time = pa.scalar(self.parse_time, type=_TIMESTAMP)
        columns["p_event_time"] = pc.coalesce(columns["createdDateTime"], parse_time)
        columns["p_parse_time"] = pa.repeat(parse_time, len(rows))
        columns["p_log_type"] = pa.repeat(pa.scalar(LOG_TYPE, type=pa.string()), len(rows))
        columns["p_schema_version"] = pa.repeat(pa.scalar(SCHEMA_VERSION, type=pa.int32()), len(rows))
        return pa.Table.from_arrays([columns[name] for name in SCHEMA.names], schema=SCHEMA)


def _string_array(values: Sequence[object]) -> pa.Array:
    """Strings as Graph sent them; anything else where Graph documents a string (a numeric incidentId) as
    its JSON text, as row() does."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # A value that is not a string.
        return pa.array([None if value is None else _as_string(value) for value in values], type=pa.string())


def _string_list_array(values: Sequence[object]) -> pa.Array:
    """Lists of strings as Graph sent them; anything else made one as row() does (_as_string_list)."""
    if set(map(type, values)) <= _LIST_OR_NONE:  # Arrow would take a bare string for a list of characters.
        try:
            array = pa.array(values, type=_STRING_LIST)
            if not array.values.null_count:  # None inside a list is dropped, not kept as null.
                return array
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # Numbers, objects inside a list.
            pass
    return pa.array([None if value is None else _as_string_list(value) for value in values], type=_STRING_LIST)


def normalize(
    alert: dict,
    *,
    source_id: str,
    source_label: str,
    parse_time: datetime,
    provider: Provider = DEFAULT_PROVIDER,
) -> dict:
    """One lake row (keys exactly SCHEMA's names) for one version of one Graph alert."""
    batch = AlertBatch(parse_time)
    batch.add(alert, source_id=source_id, source_label=source_label, provider=provider)
    return batch.row(0)


# What AlertBatch keeps per alert, in this order; the rest of SCHEMA is the same for the whole batch.
_ROW_COLUMNS = (
    STRING_PROPERTIES + STRING_LIST_PROPERTIES + TIMESTAMP_PROPERTIES + JSON_PROPERTIES
    + ("p_unmapped", "p_row_id", "p_source_id", "p_source_label") + indicators.INDICATOR_COLUMNS
)
_ROW_TYPES = tuple(SCHEMA.field(name).type for name in _ROW_COLUMNS)
_TENANT_ID = STRING_PROPERTIES.index("tenantId")
_EVIDENCE_INDEX = JSON_PROPERTIES.index("evidence")
_typed_strings = operator.attrgetter(*STRING_PROPERTIES)
_typed_string_lists = operator.attrgetter(*STRING_LIST_PROPERTIES)
_typed_timestamps = operator.attrgetter(*TIMESTAMP_PROPERTIES)
_typed_json = operator.attrgetter(*JSON_PROPERTIES)
_CREATED_INDEX = _ROW_COLUMNS.index("createdDateTime")
_ROW_ID_INDEX = _ROW_COLUMNS.index("p_row_id")
_STRING_COLUMNS = frozenset(STRING_PROPERTIES)
_STRING_LIST_COLUMNS = frozenset(STRING_LIST_PROPERTIES)
_STRING_LIST = SCHEMA.field("categories").type
_COLUMNS_FILLED = _ROW_COLUMNS + ("p_event_time", "p_parse_time", "p_log_type", "p_schema_version")
if sorted(_COLUMNS_FILLED) != sorted(SCHEMA.names):
    raise RuntimeError(f"core.py and schema.py disagree on {set(_COLUMNS_FILLED) ^ set(SCHEMA.names)}")
