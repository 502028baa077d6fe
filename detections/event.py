"""What a rule sees: one lake row as Panther's `PantherEvent` gives it, and Panther's `deep_get` and `deep_walk`.

As in panther-core: keys are looked up case-insensitively (`event.get("Severity")` reads `severity`), nested
objects and lists are read-only (mappings and sequences, not dicts and lists), `deep_walk` takes `return_val`,
`udm(...)` reads the log type's data model (detections/data_models.py), `lookup(table, key)` and `p_enrichment`
read the rule set's lookup tables. Timestamps are typed in the lake and rendered to the rule as Panther renders
them, `2026-06-02 09:41:12.000000000`. Evidence's `@odata.type` is also `at_sign_odata_type`, the name
Panther's MicrosoftGraph.SecurityAlertV2 schema gives it, so rules written for either spelling read it.

JSON text columns (`evidence`, `comments`, `additionalData`, `customDetails`, `p_unmapped`, and the log tables'
`properties` and object `identity`) are parsed on first access, so a rule that never reads evidence never pays for
parsing it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

import orjson

from normalizers import azure_activity, entra_signin

if TYPE_CHECKING:
    from detections.data_models import DataModel
    from detections.helpers import Lookups

# `properties` is the Azure Monitor log tables' (Panther's Azure.Audit and Azure.MonitorActivity give it as an object).
JSON_COLUMNS = frozenset({"evidence", "comments", "additionalData", "customDetails", "p_unmapped", "properties"})
# Activity log columns that hold an object as its JSON text when the record sent one: `identity` is the caller's
# claims and authorization in Microsoft's Event Hubs schema, and `operationName` is {value, localizedValue} in the
# tenant-level records Panther's elevate-access rule reads. Only on Activity log rows: in Entra's records both are
# free text (`identity` a display name), which a name that happens to be JSON must not turn into an object.
JSON_OBJECT_COLUMNS = frozenset({"identity", "operationName"})
# Log types whose records' other top-level keys (kept in p_unmapped) a rule reads as the record's own, as sent.
RECORD_LOG_TYPES = frozenset({entra_signin.LOG_TYPE, azure_activity.LOG_TYPE})
ODATA_TYPE, PANTHER_ODATA_TYPE = "@odata.type", "at_sign_odata_type"
ENRICHMENT = "p_enrichment"
# Panther's key for lookup data a test gives in its Log (panther-core's PantherEvent.lookup without a lookup function).
MOCKED_LOOKUPS = "_mocked_lookup_data_"
_MISSING = object()


def panther_time(value: datetime) -> str:
    """A timestamp as Panther hands it to rules: UTC, a space, nine fractional digits."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") + "000"


def deep_get(dictionary: Any, *keys: Any, default: Any = None) -> Any:
    """panther-analysis's global helper: dictionary[k1][k2]...; `default` when a level is not a mapping, a key is
    missing, or the value found is None."""
    out = reduce(lambda d, key: d.get(key, default) if isinstance(d, Mapping) else default, keys, dictionary)
    return default if out is None else out


def deep_walk(obj: Any, *keys: Any, default: Any = None, return_val: str = "all") -> Any:
    """panther-analysis's global helper: like deep_get, but lists on the way are walked item by item. The distinct
    values found in order: all of them (one value alone), the "first" or the "last"; `default` when none."""
    if not keys:
        return default if _empty_list(obj) else obj
    if isinstance(obj, Mapping):
        next_obj = obj.get(keys[0], None)
        return default if next_obj is None else deep_walk(next_obj, *keys[1:], default=default,
                                                         return_val=return_val)
    found: OrderedDict = OrderedDict()
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        for item in obj:
            value = deep_walk(item, *keys, default=default, return_val=return_val)
            if value is None:
                continue
            if isinstance(value, Sequence) and not isinstance(value, str):
                for sub_item in value:
                    found[sub_item] = None  # an unhashable value raises TypeError, as in Panther
            else:
                found[value] = None
    values = list(found)
    if not values:
        return default
    # Panther's own quirk kept: an unknown return_val gives the text "all".
    return {"first": values[0], "last": values[-1], "all": values[0] if len(values) == 1 else values}.get(
        return_val, "all")


def _empty_list(obj: Any) -> bool:
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        return all(_empty_list(item) for item in obj)
    return False


def _frozen(value: Any) -> Any:
    """A value as the rule receives it: containers read-only, timestamps as Panther's text."""
    kind = type(value)
    if kind is dict:
        return FrozenDict(value)
    if kind is list or kind is tuple:
        return FrozenList(value)
    if isinstance(value, datetime):
        return panther_time(value)
    return value


def lower_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each key by its lower-case spelling; the first of two that differ only in case wins, as in Panther."""
    lower: dict[str, str] = {}
    for name in keys:
        lower.setdefault(name.lower(), name)
    return lower


class _CaseInsensitive(Mapping[str, Any]):
    """Panther's ImmutableCaseInsensitiveDict lookups: the exact key first, else the first key equal ignoring case."""

    __slots__ = ("_lower",)

    def _original(self, key: str) -> str | None:
        lower = getattr(self, "_lower", None)
        if lower is None:
            lower = self._lower = lower_keys(self._keys())
        return lower.get(key.lower()) if isinstance(key, str) else None

    def _keys(self) -> Iterator[str]:
        raise NotImplementedError

    def deep_get(self, *keys: Any, default: Any = None) -> Any:
        return deep_get(self, *keys, default=default)


class FrozenDict(_CaseInsensitive):
    """A nested object of the event: read-only, case-insensitive, `to_dict()` for a mutable copy."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        data = self._data
        if key in data or not data:
            return _frozen(data[key])
        original = self._original(key)
        if original is None:
            raise KeyError(key)
        return _frozen(data[original])

    def _keys(self) -> Iterator[str]:
        return iter(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self._data))

    copy = to_dict


class FrozenList(Sequence[Any]):
    """A nested list of the event: read-only (Panther's ImmutableList), equal to a list or tuple of the same items."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = tuple(items)

    def __getitem__(self, index: Any) -> Any:
        found = self._items[index]
        return found if isinstance(index, slice) else _frozen(found)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenList):
            return self._items == other._items
        if isinstance(other, list | tuple):
            return self._items == tuple(other)
        return False

    __hash__ = None  # type: ignore[assignment]  # unhashable, as Panther's ImmutableList

    def __repr__(self) -> str:
        return f"FrozenList({list(self._items)!r})"

    def as_list(self) -> list[Any]:
        return copy.deepcopy(list(self._items))

    copy = as_list


@dataclass(frozen=True)
class EventContext:
    """What a rule set adds to every event: data models by log type, lookup tables, whether `lookup` reads them
    (production) or only a test's `_mocked_lookup_data_` (panther_analysis_tool has no lookup function)."""

    data_models: Mapping[str, DataModel] = field(default_factory=dict)
    lookups: Lookups | None = None
    mocked_lookups: Mapping[str, Any] | None = None
    test_enrichment: Mapping[str, Any] | None = None  # a test Log's own p_enrichment, as panther_analysis_tool reads it


_NO_CONTEXT = EventContext()


class RuleEvent(_CaseInsensitive):
    """A row as rules read it, with PantherEvent's methods: `get`, `deep_get`, `deep_walk`, `udm`, `lookup`."""

    __slots__ = ("_row", "_parsed", "_context", "_whole", "_sent", "data_model")

    def __init__(self, row: Mapping[str, Any], context: EventContext | None = None, *,
                 data_model: DataModel | None | object = _MISSING) -> None:
        self._row = row
        self._parsed: dict[str, Any] = {}
        self._context = context or _NO_CONTEXT
        self._whole: dict[str, Any] | None = None
        self._sent: dict[str, Any] | None = None
        if data_model is _MISSING:
            log_type = row.get("p_log_type")
            data_model = self._context.data_models.get(log_type) if isinstance(log_type, str) else None
        self.data_model = data_model

    def raw(self, key: str) -> Any:
        """The value of an exact key, as plain Python (JSON parsed, timestamps as text), not frozen."""
        parsed = self._parsed
        if key in parsed:
            value = parsed[key]
        else:
            try:
                value = self._row[key]
            except KeyError:
                if key != ENRICHMENT:
                    raise
                value = parsed[key] = self._enrichment()
            else:
                if key in JSON_COLUMNS:
                    value = parsed[key] = _both_spellings(_parse(value))
                elif (key in JSON_OBJECT_COLUMNS and isinstance(value, str) and value.startswith("{")
                      and self._row.get("p_log_type") == azure_activity.LOG_TYPE):
                    value = parsed[key] = _parse(value)
                elif type(value) is datetime:
                    value = parsed[key] = panther_time(value)
                else:
                    return value
        if value is None and key == ENRICHMENT and key not in self._row:
            raise KeyError(key)  # no lookup table matched: no p_enrichment, as an event Panther did not enrich
        return value

    def __getitem__(self, key: str) -> Any:
        try:
            value = self.raw(key)
        except KeyError:
            original = self._original(key)
            if original is None or original == key:
                sent = self.sent_keys()
                if not sent:
                    raise KeyError(key) from None
                found = lower_keys(sent).get(key.lower()) if isinstance(key, str) else None
                if found is None:
                    raise KeyError(key) from None
                value = sent[found]
            else:
                value = self.raw(original)
        return _frozen(value)

    def _keys(self) -> Iterator[str]:
        yield from self._row
        if ENRICHMENT not in self._row:
            yield ENRICHMENT

    def sent_keys(self) -> dict[str, Any]:
        """An Azure Monitor record's top-level keys without a column of their own (p_unmapped: `status`, `result`,
        `Caller`), as the record sent them; none for alerts, whose rows are the schema's."""
        if self._sent is None:
            self._sent = {}
            if self._row.get("p_log_type") in RECORD_LOG_TYPES and self._row.get("p_unmapped") is not None:
                unmapped = self.raw("p_unmapped")
                if isinstance(unmapped, dict):
                    self._sent = {k: v for k, v in unmapped.items() if self._row.get(k) is None}
        return self._sent

    def _original(self, key: str) -> str | None:
        shared = getattr(self._row, "lower_names", None)  # a batch's rows share their columns' map
        if shared is None:
            return super()._original(key)
        found = shared.get(key.lower()) if isinstance(key, str) else None
        return found if found is not None or key.lower() != ENRICHMENT else ENRICHMENT

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)

    def __repr__(self) -> str:
        return f"RuleEvent({self.to_dict()!r})"

    def deep_walk(self, *keys: Any, default: Any = None, return_val: str = "all") -> Any:
        return deep_walk(self, *keys, default=default, return_val=return_val)

    def to_dict(self) -> dict[str, Any]:
        """A mutable copy of the whole event, as the rule sees it."""
        return copy.deepcopy(self.container())

    copy = to_dict

    def container(self) -> dict[str, Any]:
        """The whole event as plain Python (shared, not copied): what data model paths are matched against. Built
        once per event: every Path mapping of every rule reads it."""
        if self._whole is None:
            out = {**self.sent_keys(), **{key: self.raw(key) for key in self._row}}
            if ENRICHMENT not in out and self.get(ENRICHMENT) is not None:
                out[ENRICHMENT] = self.raw(ENRICHMENT)
            self._whole = out
        return self._whole

    def event_time_epoch(self) -> int:
        """p_event_time in epoch seconds; 0 when there is none (panther-core's PantherEvent.event_time_epoch)."""
        value = self._row.get("p_event_time")
        return int(value.timestamp()) if isinstance(value, datetime) else 0

    def udm(self, *key: str, default: Any = None) -> Any:
        """panther-core's two modes: a single key the log type's data model maps (a Path or a Method), else
        `p_udm.<keys>`, else the keys on the event itself, else `default`."""
        model = self.data_model
        if len(key) == 1 and model is not None:
            name = key[0]
            keys = model.simple_paths.get(name)
            if keys is not None:  # `$.a.b`: read without building the whole event for JSONPath
                found = self._walk(keys)
                if found is not _MISSING:
                    return _frozen(found)
                return default
            path = model.paths.get(name)
            if path is not None:
                matches = path.find(self.container())
                if len(matches) > 1:
                    raise ValueError(f"JSONPath [{path}] in DataModel [{model.data_model_id}], matched multiple "
                                     "fields.")
                if matches:
                    return _frozen(matches[0].value)
            method = model.methods.get(name)
            if method is not None:
                return _frozen(method(self))
            if name in model.paths or name in model.methods:
                return default
        if key:
            result = self.deep_get("p_udm", *key)
            if not result:
                result = self.deep_get(*key)
            if result:
                return result
        return default

    def _walk(self, keys: tuple[str, ...]) -> Any:
        """What JSONPath `$.k1.k2...` finds in the event (exact keys, as JSONPath reads them), or _MISSING."""
        if keys[0] not in self._row and not (keys[0] == ENRICHMENT and self.get(ENRICHMENT) is not None):
            return _MISSING
        value = self.raw(keys[0])
        for key in keys[1:]:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        return value

    def udm_path(self, key: str) -> str | None:
        """panther-core's: the full path of the field the key's JSONPath finds in this event (`properties.ipAddress`,
        the key p_enrichment files a match under), else the key's Method's name, else None."""
        model = self.data_model
        if model is None:
            raise ValueError(f"a data model hasn't been specified for log type {self._row.get('p_log_type')}")
        path = model.paths.get(key)
        if path is not None:
            matches = path.find(self.container())
            if len(matches) > 1:
                raise ValueError(f"JSONPath [{path}] in DataModel [{model.data_model_id}], matched multiple fields.")
            if matches:
                return str(matches[0].full_path)
        method = model.methods.get(key)
        return getattr(method, "__name__", repr(method)) if method is not None else None

    def lookup(self, lookup_name: str, lookup_key: str) -> Any:
        """The row of lookup table `lookup_name` (a CSV file of the rules folders, `.csv` optional) whose first
        column, its primary key, is `lookup_key`; None when there is none. In a test, the Log's
        `_mocked_lookup_data_` instead, as panther_analysis_tool does."""
        context = self._context
        if context.mocked_lookups is not None or context.lookups is None:
            return deep_get(FrozenDict(context.mocked_lookups or {}), lookup_name, lookup_key)
        found = context.lookups.by_key(lookup_name).get(str(lookup_key))
        return None if found is None else FrozenDict(found)

    def _enrichment(self) -> dict[str, Any] | None:
        """`p_enrichment`: for each lookup table, the rows whose primary key is one of the row's p_any_* values, by
        the p_any_* column that matched (one row, or a list of them), as Panther's enrichment lays them out."""
        lookups = self._context.lookups
        if self._context.mocked_lookups is not None:
            return dict(self._context.test_enrichment) if self._context.test_enrichment else None
        if lookups is None:
            return None
        out: dict[str, Any] = {}
        for table in lookups.table_names():
            index = lookups.by_key(table)
            if not index:
                continue
            for column, values in self._row.items():
                if not column.startswith("p_any_") or not values:
                    continue
                rows = [index[v] for v in (values if isinstance(values, list | tuple) else [values])
                        if str(v) in index]
                if rows:
                    out.setdefault(table, {})[column] = rows[0] if len(rows) == 1 else rows
        return out or None


def _both_spellings(value: Any) -> Any:
    """Every object holding one of `@odata.type` / `at_sign_odata_type` gets the other too (in place: the value
    was just parsed from the stored JSON and belongs to this event)."""
    if isinstance(value, list):
        for item in value:
            _both_spellings(item)
    elif isinstance(value, dict):
        if ODATA_TYPE in value and PANTHER_ODATA_TYPE not in value:
            value[PANTHER_ODATA_TYPE] = value[ODATA_TYPE]
        elif PANTHER_ODATA_TYPE in value and ODATA_TYPE not in value:
            value[ODATA_TYPE] = value[PANTHER_ODATA_TYPE]
        for item in value.values():
            if isinstance(item, dict | list):
                _both_spellings(item)
    return value


class TableRows:
    """The rows of an Arrow table as mappings that convert a column to Python only when a rule first reads it,
    once per batch: most rules read a handful of a table's columns."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._columns: dict[str, list[Any]] = {}
        self.names = tuple(table.column_names)
        self.name_set = frozenset(self.names)
        self.lower_names = lower_keys(self.names)

    def column(self, name: str) -> list[Any]:
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = self._table.column(name).to_pylist()
        return found

    def __len__(self) -> int:
        return self._table.num_rows

    def __iter__(self) -> Iterator[TableRow]:
        return (TableRow(self, i) for i in range(self._table.num_rows))


class TableRow(Mapping[str, Any]):
    __slots__ = ("_rows", "_index")

    def __init__(self, rows: TableRows, index: int) -> None:
        self._rows, self._index = rows, index

    def __getitem__(self, key: str) -> Any:
        if key not in self._rows.name_set:
            raise KeyError(key)
        return self._rows.column(key)[self._index]

    @property
    def lower_names(self) -> dict[str, str]:
        return self._rows.lower_names

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows.names)

    def __len__(self) -> int:
        return len(self._rows.names)


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # not JSON after all: the rule sees the text as stored
