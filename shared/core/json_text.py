"""Graph values as the lake's text, one way everywhere: the normalizer writes a non-string value (a numeric
incidentId, an object where Graph documents a string) as its JSON text, and the pull and the audit key versions by
the same text, or a version keyed one way by the pull is another alert to the lake.
"""

from __future__ import annotations

import json

import orjson


def json_text(value: object) -> str:
    """The value as compact JSON text (UTF-8 kept as is)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library keeps them exactly.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def as_text(value: object) -> str | None:
    """A value where Graph documents a string: the string itself, anything else as its JSON text, None as None."""
    return value if value is None or type(value) is str else json_text(value)
