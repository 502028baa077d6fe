"""Panther's match expressions (the YAML of `Detection`, `InlineFilters` and `DynamicSeverities`), compiled once per
rule into a predicate on the event.

Key specifiers: `Key` (a top-level field), `DeepKey` (a list of keys and list indexes), `KeyPath` (`a.b[0].c`,
`a[*].b` for every element). Expressions: key/value (`Value`), key/values (`IsIn`/`IsNotIn` with `Values`),
multi-key (`Condition` with `Values` a list of key specifiers), list comprehension (`AnyElement`, `AllElements`,
`OnlyOneElement`, `NoElement` with `Expressions` evaluated on each element), existence, absolute (`AlwaysTrue`,
`AlwaysFalse`), and the combinators `All`, `Any`, `OnlyOne`, `None`; a list of expressions is `All`.

Fields are read through the event's own `get`, so a rule's expressions see the same event its Python sees. Where
Panther's documentation fixes the semantics they are Panther's (docs.panther.com, "How Inline Filters work"): an
inline filter passes when the event does not contain the key; a key whose value is null fails a positive condition
and passes its inverse, in an inline filter as in a Detection; a Detection's condition treats a missing key as null.
A lake row holds every column of its table, so a null column is a key with a null value (Graph sends an alert's unset
properties as null); missing is a key the row does not have, or a nested key its JSON lacks. Enrichment expressions
are refused (graphlake has no Panther enrichment to read). Anything else unknown raises `ValueError` with one line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Predicate = Callable[[Any], bool]

_MISSING = object()
_KEY_SPECIFIERS = ("Key", "DeepKey", "KeyPath")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\*|\d+)\]")
_WILDCARD = object()


class _Found(list):
    """The values a `[*]` path found: a condition holds when it holds for one of them (its inverse: for none)."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _equal(found: Any, value: Any) -> bool:
    if isinstance(found, bool) or isinstance(value, bool):
        return found is value or (isinstance(found, str) and found.lower() == str(value).lower())
    if found == value:
        return True
    # YAML's 5 and an event's "5" (or the reverse) name the same value.
    return isinstance(found, str | int | float) and isinstance(value, str | int | float) and _text(found) == _text(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(op: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(found: Any, value: Any) -> bool:
        a, b = _number(found), _number(value)
        if a is not None and b is not None:
            return op(a, b)
        if isinstance(found, str) and isinstance(value, str):  # timestamps as Panther renders them compare as text
            return op(found, value)  # type: ignore[arg-type]
        return False
    return check


def _contains(found: Any, value: Any, fold: bool = False) -> bool:
    if isinstance(found, str):
        return _text(value).lower() in found.lower() if fold else _text(value) in found
    if isinstance(found, Sequence):
        return any(_equal(item, value) or (fold and _text(item).lower() == _text(value).lower()) for item in found)
    return False


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(_text(value).strip())
    except ValueError:
        return None


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(_text(value).strip(), strict=False)
    except ValueError:
        return None


def _in_cidr(found: Any, value: Any) -> bool:
    ip, net = _ip(found), _network(value)
    return ip is not None and net is not None and ip.version == net.version and ip in net


def _cidr_contains(found: Any, value: Any) -> bool:  # the event holds the CIDR, the YAML the address
    return _in_cidr(value, found)


def _istr(op: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    return lambda found, value: isinstance(found, str) and op(found.lower(), _text(value).lower())


def _str(op: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    return lambda found, value: isinstance(found, str) and op(found, _text(value))


# Conditions with a Value: positive check, and whether the name is the inverse of it.
_WITH_VALUE: dict[str, tuple[Callable[[Any, Any], bool], bool]] = {
    "Equals": (_equal, False),
    "DoesNotEqual": (_equal, True),
    "IEquals": (_istr(str.__eq__), False),
    "IDoesNotEqual": (_istr(str.__eq__), True),
    "StartsWith": (_str(str.startswith), False),
    "DoesNotStartWith": (_str(str.startswith), True),
    "IStartsWith": (_istr(str.startswith), False),
    "IDoesNotStartWith": (_istr(str.startswith), True),
    "EndsWith": (_str(str.endswith), False),
    "DoesNotEndWith": (_str(str.endswith), True),
    "IEndsWith": (_istr(str.endswith), False),
    "IDoesNotEndWith": (_istr(str.endswith), True),
    "Contains": (_contains, False),
    "DoesNotContain": (_contains, True),
    "IContains": (lambda f, v: _contains(f, v, fold=True), False),
    "IDoesNotContain": (lambda f, v: _contains(f, v, fold=True), True),
    "IsGreaterThan": (_compare(lambda a, b: a > b), False),
    "IsGreaterThanOrEqual": (_compare(lambda a, b: a >= b), False),
    "IsGreaterThanOrEquals": (_compare(lambda a, b: a >= b), False),
    "IsLessThan": (_compare(lambda a, b: a < b), False),
    "IsLessThanOrEqual": (_compare(lambda a, b: a <= b), False),
    "IsLessThanOrEquals": (_compare(lambda a, b: a <= b), False),
    "IsIPAddressInCIDR": (_in_cidr, False),
    "IsIPAddressNotInCIDR": (_in_cidr, True),
    "CIDRContainsIPAddresses": (_cidr_contains, False),
    "CIDRDoesNotContainIPAddresses": (_cidr_contains, True),
}
_WITH_VALUES = {"IsIn": False, "IsNotIn": True}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | Sequence | Mapping) and len(value) == 0)


# Conditions on the field alone; outside an inline filter a missing key reaches them as null.
_UNARY: dict[str, Callable[[Any], bool]] = {
    "Exists": lambda v: v is not None,
    "DoesNotExist": lambda v: v is None,
    "IsNull": lambda v: v is None,
    "IsNotNull": lambda v: v is not None,
    "IsNullOrEmpty": _empty,
    "IsNotNullOrEmpty": lambda v: not _empty(v),
    "IsIPAddress": lambda v: v is not None and _ip(v) is not None,
    "IsIPv4Address": lambda v: v is not None and isinstance(_ip(v), ipaddress.IPv4Address),
    "IsIPv6Address": lambda v: v is not None and isinstance(_ip(v), ipaddress.IPv6Address),
    "IsIPAddressPrivate": lambda v: v is not None and (ip := _ip(v)) is not None and ip.is_private,
    "IsIPAddressPublic": lambda v: v is not None and (ip := _ip(v)) is not None and ip.is_global,
}
_ABSOLUTE = {"AlwaysTrue": True, "AlwaysFalse": False}
_ELEMENTS = ("AnyElement", "AllElements", "OnlyOneElement", "NoElement")
_COMBINATORS = ("All", "Any", "OnlyOne", "None")
# Panther's InlineFilters take a smaller set: no list comprehension, no multi-key, no OnlyOne/None.
_INLINE_COMBINATORS = ("All", "Any")

CONDITIONS = frozenset(_WITH_VALUE) | frozenset(_WITH_VALUES) | frozenset(_UNARY) | frozenset(_ABSOLUTE) | \
    frozenset(_ELEMENTS)


def compile_expressions(raw: Any, where: str, *, inline: bool = False) -> Predicate:
    """The predicate of a list of match expressions (all must hold). `where` names the YAML key in errors.
    `inline`: InlineFilters' semantics (a field the event lacks passes) and their smaller grammar."""
    if not isinstance(raw, list):
        raise ValueError(f"{where} must be a list of match expressions")
    parts = [_compile(item, f"{where}[{i}]", inline) for i, item in enumerate(raw)]
    return lambda event: all(p(event) for p in parts)


def compile_key(raw: Any, where: str) -> Callable[[Any], Any]:
    """A key specifier ({Key: ...}, {DeepKey: [...]}, {KeyPath: ...}) as a function giving the field's value."""
    if not isinstance(raw, Mapping) or len(raw) != 1 or next(iter(raw)) not in _KEY_SPECIFIERS:
        raise ValueError(f"{where} must be one of {{Key: ...}}, {{DeepKey: [...]}}, {{KeyPath: ...}}")
    path = _path(raw, where)
    return lambda event: _none_if_missing(_resolve(event, path))


def key_path(text: str, where: str) -> tuple[Any, ...]:
    return _path({"KeyPath": text}, where)


def resolve(event: Any, path: tuple[Any, ...]) -> Any:
    """The value at path (None when missing; a list of values through `[*]`)."""
    return _none_if_missing(_resolve(event, path))


def _none_if_missing(value: Any) -> Any:
    return None if value is _MISSING else value


def _path(item: Mapping, where: str) -> tuple[Any, ...]:
    if "Key" in item:
        key = item["Key"]
        if not isinstance(key, str) or not key:
            raise ValueError(f"{where}: Key must be a field name")
        return (key,)
    if "DeepKey" in item:
        keys = item["DeepKey"]
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str | int) for k in keys):
            raise ValueError(f"{where}: DeepKey must be a list of keys (and list indexes)")
        return tuple(keys)
    text = item["KeyPath"]
    if not isinstance(text, str) or not text:
        raise ValueError(f"{where}: KeyPath must be a path such as a.b[0].c")
    parts: list[Any] = []
    position = 0
    for match in _PATH_PART.finditer(text):
        if match.start() != position and text[position:match.start()] != ".":
            raise ValueError(f"{where}: KeyPath {text!r} is not a path such as a.b[0].c")
        name, index = match.groups()
        parts.append(name if name is not None else _WILDCARD if index == "*" else int(index))
        position = match.end()
    if position != len(text) or not parts:
        raise ValueError(f"{where}: KeyPath {text!r} is not a path such as a.b[0].c")
    return tuple(parts)


def _is_list(obj: Any) -> bool:
    # The event's lists are read-only sequences (detections/event.py), not `list`s.
    return isinstance(obj, Sequence) and not isinstance(obj, str | bytes)


def _resolve(obj: Any, path: Sequence[Any]) -> Any:
    for i, part in enumerate(path):
        if part is _WILDCARD:
            if not _is_list(obj):
                return _MISSING
            found, null = _Found(), False
            for item in obj:
                value = _resolve(item, path[i + 1:])
                if value is _MISSING or value is None:
                    null = null or value is None
                    continue
                found.extend(value) if isinstance(value, _Found) else found.append(value)
            return None if null and not found else found  # only nulls found: null, not missing
        if isinstance(part, int) and _is_list(obj):
            if not -len(obj) <= part < len(obj):
                return _MISSING
            obj = obj[part]
        elif isinstance(obj, Mapping):
            obj = obj.get(part, _MISSING)  # the event's own get: its key semantics apply
            if obj is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return obj


def _compile(item: Any, where: str, inline: bool) -> Predicate:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be a mapping (a match expression)")
    combinators = [k for k in _COMBINATORS if k in item]
    if combinators:
        name = combinators[0]
        if len(item) != 1:
            raise ValueError(f"{where}: {name} stands alone, not with {', '.join(k for k in item if k != name)}")
        if inline and name not in _INLINE_COMBINATORS:
            raise ValueError(f"{where}: InlineFilters take All and Any, not {name}")
        children = item[name]
        if not isinstance(children, list):  # `All: []` is Panther's empty filter: it holds
            raise ValueError(f"{where}: {name} must be a list of match expressions")
        parts = [_compile(child, f"{where}.{name}[{i}]", inline) for i, child in enumerate(children)]
        if name == "All":
            return lambda event: all(p(event) for p in parts)
        if name == "Any":
            return lambda event: any(p(event) for p in parts)
        if name == "OnlyOne":
            return lambda event: sum(1 for p in parts if p(event)) == 1
        return lambda event: not any(p(event) for p in parts)
    if "Enrichment" in item:
        raise ValueError(f"{where}: Enrichment match expressions are not supported (graphlake has no Panther "
                         "enrichment tables)")
    condition = item.get("Condition")
    if not isinstance(condition, str):
        raise ValueError(f"{where}: Condition is missing")
    if condition not in CONDITIONS:
        raise ValueError(f"{where}: unknown Condition {condition!r}")
    keys = [k for k in _KEY_SPECIFIERS if k in item]
    if len(keys) > 1:
        raise ValueError(f"{where}: give one of Key, DeepKey, KeyPath, not {' and '.join(keys)}")
    extra = set(item) - {"Condition", "Value", "Values", "Expressions", *keys}
    if extra:
        raise ValueError(f"{where}: unknown key {sorted(extra)[0]!r} in a match expression")
    if condition in _ABSOLUTE:
        if keys or {"Value", "Values", "Expressions"} & set(item):
            raise ValueError(f"{where}: {condition} takes no key or value")
        result = _ABSOLUTE[condition]
        return lambda event: result
    if not keys:
        if condition in _WITH_VALUE and isinstance(item.get("Values"), list) and not inline:
            return _multi_key(item, condition, where)
        raise ValueError(f"{where}: Condition {condition} needs a Key, DeepKey or KeyPath")
    path = _path(item, where)
    if condition in _ELEMENTS:
        if inline:
            raise ValueError(f"{where}: InlineFilters take no list comprehension ({condition})")
        return _elements(path, condition, item.get("Expressions"), where)
    if "Expressions" in item:
        raise ValueError(f"{where}: Expressions go with AnyElement, AllElements, OnlyOneElement or NoElement")
    if condition in _UNARY:
        if {"Value", "Values"} & set(item):
            raise ValueError(f"{where}: {condition} takes no Value")
        check = _UNARY[condition]
        return _field(path, lambda v: _any_found(check, v, condition.startswith(("DoesNot", "IsNot"))), inline,
                      none_ok=True)
    if condition in _WITH_VALUES:
        values = item.get("Values")
        if "Value" in item or not isinstance(values, list) or not values:
            raise ValueError(f"{where}: {condition} needs Values, a non-empty list")
        negate = _WITH_VALUES[condition]

        def member(v: Any) -> bool:
            if _is_list(v):  # panther-core's `in` on a list target: one of its items is a member
                return any(_equal(item, x) for item in v for x in values)
            return any(_equal(v, x) for x in values)
        return _field(path, lambda v: _holds(member, v, negate), inline, negate=negate)
    if "Value" not in item or "Values" in item:
        raise ValueError(f"{where}: {condition} needs one Value")
    value = item["Value"]
    if isinstance(value, list | Mapping):
        raise ValueError(f"{where}: Value must be a number, text or true/false")
    if condition in ("IsIPAddressInCIDR", "IsIPAddressNotInCIDR") and _network(value) is None:
        raise ValueError(f"{where}: {condition} needs a CIDR Value, not {value!r}")
    compare, negate = _WITH_VALUE[condition]
    return _field(path, lambda v: _holds(lambda x: compare(x, value), v, negate), inline, negate=negate)


def _holds(check: Callable[[Any], bool], found: Any, negate: bool) -> bool:
    hit = any(check(x) for x in found) if isinstance(found, _Found) else check(found)
    return not hit if negate else hit


def _any_found(check: Callable[[Any], bool], found: Any, negative: bool) -> bool:
    if isinstance(found, _Found):
        return all(check(x) for x in found) if negative else any(check(x) for x in found)
    return check(found)


def _field(path: tuple[Any, ...], check: Callable[[Any], bool], inline: bool, *, negate: bool = False,
           none_ok: bool = False) -> Predicate:
    def predicate(event: Any) -> bool:
        found = _resolve(event, path)
        if found is _MISSING or (isinstance(found, _Found) and not found):
            if inline:
                return True  # Panther: an inline filter on a field the event does not contain passes
            found = None
        if found is None and not none_ok:
            return negate  # null fails a positive condition and passes its inverse (inline filters too)
        return check(found)
    return predicate


def _multi_key(item: Mapping, condition: str, where: str) -> Predicate:
    specs = item["Values"]
    if len(specs) != 2:
        raise ValueError(f"{where}: a multi-key {condition} compares two keys, given {len(specs)}")
    left, right = (compile_key(s, f"{where}.Values[{i}]") for i, s in enumerate(specs))
    compare, negate = _WITH_VALUE[condition]

    def predicate(event: Any) -> bool:
        a, b = left(event), right(event)
        if a is None or b is None:
            return negate
        return compare(a, b) != negate
    return predicate


def _elements(path: tuple[Any, ...], condition: str, expressions: Any, where: str) -> Predicate:
    inner = compile_expressions(expressions, f"{where}.Expressions")

    def predicate(event: Any) -> bool:
        found = _resolve(event, path)
        items = list(found) if _is_list(found) else []
        hits = sum(1 for element in items if inner(element if isinstance(element, Mapping) else {}))
        if condition == "AnyElement":
            return hits > 0
        if condition == "AllElements":
            return bool(items) and hits == len(items)
        if condition == "OnlyOneElement":
            return hits == 1
        return hits == 0
    return predicate
