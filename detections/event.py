"""What a rule sees: one lake row as a read-only mapping, with Panther's `deep_get` and `deep_walk`.

JSON text columns (`evidence`, `comments`, `additionalData`, `customDetails`, `p_unmapped`) are parsed on first
access, so a rule that never reads evidence never pays for parsing it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

JSON_COLUMNS = frozenset({"evidence", "comments", "additionalData", "customDetails", "p_unmapped"})
_MISSING = object()


def deep_get(obj: Any, *keys: Any, default: Any = None) -> Any:
    """obj[k1][k2]... through nested mappings; `default` when a key is missing, a level is not a mapping, or the
    value found is None (as panther-analysis's global helper)."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return default
        obj = obj.get(key, _MISSING)
        if obj is _MISSING:
            return default
    return default if obj is None else obj


def deep_walk(obj: Any, *keys: Any, default: Any = None) -> Any:
    """Like deep_get, but a list on the way is walked item by item: the distinct values found, one value alone,
    or `default` when nothing was found (evidence is a list: `deep_walk(event, "evidence", "userAccount",
    "userPrincipalName")`)."""
    found: dict[Any, None] = {}
    _walk(obj, keys, found)
    values = list(found)
    if not values:
        return default
    return values[0] if len(values) == 1 else values


def _walk(obj: Any, keys: Sequence[Any], found: dict[Any, None]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _walk(item, keys, found)
        return
    if not keys:
        if obj is not None:
            try:
                found[obj] = None
            except TypeError:  # a mapping or another unhashable leaf: kept by identity
                found[orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()] = None
        return
    if isinstance(obj, Mapping):
        _walk(obj.get(keys[0]), keys[1:], found)


class RuleEvent(Mapping[str, Any]):
    """A row as rules read it: `event["title"]`, `event.get("severity")`, `event.deep_get("evidence", ...)`."""

    __slots__ = ("_row", "_parsed")

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row
        self._parsed: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in JSON_COLUMNS:
            if key not in self._parsed:
                text = self._row[key]
                self._parsed[key] = _parse(text)
            return self._parsed[key]
        return self._row[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)

    def deep_get(self, *keys: Any, default: Any = None) -> Any:
        return deep_get(self, *keys, default=default)

    def deep_walk(self, *keys: Any, default: Any = None) -> Any:
        return deep_walk(self, *keys, default=default)

    def to_dict(self) -> dict[str, Any]:
        return {key: self[key] for key in self._row}


class TableRows:
    """The rows of an Arrow table as mappings that convert a column to Python only when a rule first reads it,
    once per batch: most rules read a handful of the table's 60 columns."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._columns: dict[str, list[Any]] = {}
        self.names = tuple(table.column_names)

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
        if key not in self._rows.names:
            raise KeyError(key)
        return self._rows.column(key)[self._index]

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
