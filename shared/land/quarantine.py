"""Dead-letter for events that cannot be normalized.

Without a retry policy the Functions host checkpoints past a failed batch, and with one it still does after
the last retry, so an event that raises is lost. Events that fail for a reason a retry cannot fix (bad
JSON, an unexpected shape) are therefore written here, with everything needed to replay them, and the batch
goes on.

The name depends only on the raw bytes and the event's enqueued day, so when a batch is retried the
document is overwritten rather than duplicated.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

import orjson

from shared.core.errors import one_line
from shared.core.storage import Store
from shared.core.timestamps import parse_graph_time

PREFIX = "quarantine/"
_PREVIEW_CHARS = 4096
_ERROR_CHARS = 2000


def quarantine(store: Store, *, raw: bytes, error: str, metadata: dict[str, Any],
               now: dt.datetime | None = None) -> str:
    """Write one JSON document about a failed event; return its name.

    metadata: the event's partition, sequence_number, offset, enqueued_time and properties (any JSON-able
    values; datetimes and bytes are converted). now: the time recorded (default: the clock).
    """
    now = _utc(now) if now else dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(raw).hexdigest()
    # The enqueued time is the same on every redelivery; the wall clock is not (a retry may cross midnight).
    day = _as_datetime(metadata.get("enqueued_time")) or now
    name = f"{PREFIX}{day:%Y/%m/%d}/{digest[:24]}.json"
    try:
        preview: str | None = raw.decode("utf-8")[:_PREVIEW_CHARS]
    except UnicodeDecodeError:
        preview = None
    doc = {
        "quarantined_at": now.isoformat(),
        "error": one_line(error, limit=_ERROR_CHARS),
        "metadata": _jsonable(metadata),
        "raw_sha256": digest,
        "raw_size": len(raw),
        "raw_base64": base64.b64encode(raw).decode("ascii"),
        "raw_utf8_preview": preview,
    }
    store.write(name, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return name


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _as_datetime(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return _utc(value)
    return parse_graph_time(value)


def _jsonable(value: Any) -> Any:
    """Event Hubs properties may have bytes keys and values; JSON has neither."""
    if isinstance(value, dict):
        return {_text(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, dt.datetime):
        return _utc(value).isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    return str(value)
