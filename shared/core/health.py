"""Health records in the state store: what each unattended run last did, for `graphlake status` and the alert rules.

One small JSON blob per writer (`health/<component>/<key>.json`), each written only by its own component, so
writers never contend: pull writes one per source, reconcile one per source, normalize one per partition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import logging

import orjson

from shared.core.storage import Store

PREFIX = "health/"
# Every record is also logged on this line, so the workspace's alert rules read health from the logs
# (AppTraces | where Message startswith "graphlake.health") without access to the state container.
log = logging.getLogger("graphlake.health")


def record(state: Store, component: str, key: str, doc: dict[str, Any], *, now: datetime | None = None) -> None:
    """Replaces the record of (component, key); `updated` is set to now."""
    body = {**doc, "component": component, "key": key,
            "updated": (now or datetime.now(UTC)).isoformat()}
    text = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    state.write(_name(component, key), text)
    log.info("graphlake.health %s", text.decode())


def load(state: Store, component: str, key: str) -> dict[str, Any] | None:
    found = state.read(_name(component, key))
    return orjson.loads(found.data) if found else None


def load_all(state: Store) -> dict[tuple[str, str], dict[str, Any]]:
    """Every record, keyed by (component, key)."""
    out = {}
    for name in state.list(PREFIX):
        component, _, file = name.removeprefix(PREFIX).partition("/")
        if file.endswith(".json"):
            doc = load(state, component, file.removesuffix(".json"))
            if doc is not None:
                out[(component, file.removesuffix(".json"))] = doc
    return out


def _name(component: str, key: str) -> str:
    return f"{PREFIX}{component}/{key}.json"
