"""Panther's YAML-only rule keys compiled into the functions a Python rule defines, so the engine runs a simple
detection exactly as it runs Python: `Detection` is `rule`, `AlertTitle` is `title`, `GroupBy` is `dedup`,
`AlertContext` is `alert_context`, `DynamicSeverities` is `severity`.

On a Python rule the same keys fill in only the functions its file does not define (the file's own function wins).
`AlertTitle` interpolates `{field}` with a KeyPath (`{actor.id}`, `{evidence[0].ipAddress}`); a field the event
lacks renders empty. `GroupBy` joins its keys' values with `:`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from detections import match_conditions

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def functions(spec: Mapping[str, Any], severities: Mapping[str, str]) -> dict[str, Callable[[Any], Any]]:
    """The functions the spec's YAML keys define, by Python name; ValueError (one line) on a malformed key.
    `severities`: lower-cased severity name -> Panther's spelling."""
    found: dict[str, Callable[[Any], Any]] = {}
    if "Detection" in spec:
        found["rule"] = match_conditions.compile_expressions(spec["Detection"], "Detection")
    if "AlertTitle" in spec:
        found["title"] = _title(spec["AlertTitle"])
    if "GroupBy" in spec:
        found["dedup"] = _group_by(spec["GroupBy"])
    if "AlertContext" in spec:
        found["alert_context"] = _context(spec["AlertContext"])
    if "DynamicSeverities" in spec:
        found["severity"] = _severities(spec["DynamicSeverities"], severities)
    return found


def _title(template: Any) -> Callable[[Any], str]:
    if not isinstance(template, str) or not template.strip():
        raise ValueError("AlertTitle must be text")
    paths = {name: match_conditions.key_path(name.strip(), f"AlertTitle {{{name}}}")
             for name in _PLACEHOLDER.findall(template)}

    def title(event: Any) -> str:
        def fill(match: re.Match) -> str:
            value = match_conditions.resolve(event, paths[match.group(1)])
            return "" if value is None else str(value)
        return _PLACEHOLDER.sub(fill, template)
    return title


def _group_by(raw: Any) -> Callable[[Any], str]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("GroupBy must be a non-empty list of keys ({KeyPath: ...})")
    keys = [match_conditions.compile_key(item, f"GroupBy[{i}]") for i, item in enumerate(raw)]

    def dedup(event: Any) -> str:
        return ":".join("" if (v := key(event)) is None else str(v) for key in keys)
    return dedup


def _context(raw: Any) -> Callable[[Any], dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("AlertContext must be a non-empty list of {KeyName, KeyValue}")
    pairs = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) != {"KeyName", "KeyValue"} or \
                not isinstance(item["KeyName"], str):
            raise ValueError(f"AlertContext[{i}] must be {{KeyName: name, KeyValue: {{KeyPath: ...}}}}")
        pairs.append((item["KeyName"], match_conditions.compile_key(item["KeyValue"], f"AlertContext[{i}].KeyValue")))

    def alert_context(event: Any) -> dict[str, Any]:
        return {name: key(event) for name, key in pairs}
    return alert_context


def _severities(raw: Any, severities: Mapping[str, str]) -> Callable[[Any], str]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("DynamicSeverities must be a non-empty list of {ChangeTo, Conditions}")
    cases = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) != {"ChangeTo", "Conditions"}:
            raise ValueError(f"DynamicSeverities[{i}] must be {{ChangeTo: severity, Conditions: [...]}}")
        severity = severities.get(str(item["ChangeTo"]).lower())
        if severity is None:
            raise ValueError(f"DynamicSeverities[{i}].ChangeTo {item['ChangeTo']!r} is not one of "
                             f"{', '.join(dict.fromkeys(severities.values()))}")
        cases.append((severity, match_conditions.compile_expressions(
            item["Conditions"], f"DynamicSeverities[{i}].Conditions")))

    def severity(event: Any) -> str:
        # The first case whose conditions hold; none: the YAML's Severity.
        return next((s for s, holds in cases if holds(event)), "DEFAULT")
    return severity
