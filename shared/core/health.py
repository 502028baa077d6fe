"""Health records in the state store: what each unattended run last did, for `graphlake status` and the alert rules.

One small JSON blob per writer (`health/<component>/<key>.json`), each written only by its own component, so
writers never contend: pull writes one per source, reconcile one per source, normalize one per partition.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.core.errors import GraphlakeError, one_line
from shared.core.storage import Store

PREFIX = "health/"
# Every record is also logged on this line, so the workspace's alert rules read health from the logs
# (AppTraces | where Message startswith "graphlake.health") without access to the state container.
log = logging.getLogger("graphlake.health")


def record(state: Store, component: str, key: str, doc: dict[str, Any], *, now: datetime | None = None) -> None:
    """Replaces the record of (component, key); `updated` is set to now. The log line is written whatever happens
    to the state write, and says how it went: in a storage outage the logs are all the alert rules have."""
    body = {**doc, "component": component, "key": key,
            "updated": (now or datetime.now(UTC)).isoformat()}
    text = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    try:
        state.write(_name(component, key), text)
    except Exception as exc:
        _log_line({**body, "state_write": f"failed: {one_line(exc, with_type=True)}"})
        raise
    _log_line({**body, "state_write": "ok"})


def _log_line(body: dict[str, Any]) -> None:
    log.info("graphlake.health %s", orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS).decode())


class UnreadableRecord(GraphlakeError):
    """A record that is not a JSON object (cut short by a crash, or edited)."""


def load(state: Store, component: str, key: str) -> dict[str, Any] | None:
    """The record, None when there is none, UnreadableRecord naming its path when it cannot be read."""
    name = _name(component, key)
    found = state.read(name)
    if not found:
        return None
    try:
        doc = orjson.loads(found.data)
    except orjson.JSONDecodeError as exc:
        raise UnreadableRecord(f"{name} is not a health record: {one_line(exc)}") from None
    if not isinstance(doc, dict):
        raise UnreadableRecord(f"{name} is not a health record: a JSON {type(doc).__name__}, not an object")
    return doc


def previous(state: Store, component: str, key: str) -> dict[str, Any]:
    """What a writer carries over (failures in a row); an unreadable record counts as none, since the writer is
    about to replace it."""
    try:
        return load(state, component, key) or {}
    except UnreadableRecord as exc:
        log.warning("graphlake.health %s; replacing it", exc)
        return {}


def load_all(state: Store) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], str]]:
    """Every record keyed by (component, key), and apart the ones that cannot be read, with why."""
    records, unreadable = {}, {}
    for name in state.list(PREFIX):
        component, _, file = name.removeprefix(PREFIX).partition("/")
        if file.endswith(".json"):
            key = file.removesuffix(".json")
            try:
                doc = load(state, component, key)
            except UnreadableRecord as exc:
                unreadable[(component, key)] = str(exc)
                continue
            if doc is not None:
                records[(component, key)] = doc
    return records, unreadable


def _name(component: str, key: str) -> str:
    return f"{PREFIX}{component}/{key}.json"
