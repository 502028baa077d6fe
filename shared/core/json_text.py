"""Graph values as the lake's text, one way everywhere: the normalizer writes a non-string value (a numeric
incidentId, an object where Graph documents a string) as its JSON text, and the pull and the audit key versions by
the same text, or a version keyed one way by the pull is another alert to the lake.
"""

from __future__ import annotations

import json

import orjson


def json_text(value: object) -> str:
    """The value as compact JSON text (UTF-8 kept as is)."""
    return _dumps(value, sort_keys=False).decode()


def canonical_json(value: object) -> bytes:
    """JSON with keys sorted at every level and no whitespace: one text for one value, whatever the writer's order
    (what an Azure Monitor record's row id hashes)."""
    return _dumps(value, sort_keys=True)


def _dumps(value: object, *, sort_keys: bool) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library keeps them exactly.
        return json.dumps(value, sort_keys=sort_keys, ensure_ascii=False, separators=(",", ":")).encode()


def as_text(value: object) -> str | None:
    """A value where Graph documents a string: the string itself, anything else as its JSON text, None as None."""
    return value if value is None or type(value) is str else json_text(value)
