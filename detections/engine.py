"""Evaluating rules on rows: each rule on each row, a rule that raises reported and skipped, never the batch."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detections.event import RuleEvent
from detections.loader import Rule
from shared.core.errors import one_line

log = logging.getLogger("graphlake.detections")


@dataclass
class Match:
    rule: Rule
    row: Mapping[str, Any]  # the matched row (a lake row, or a scheduled rule's result row)
    title: str
    dedup: str
    severity: str
    context: dict[str, Any]
    match_id: str  # p_row_id of the match: one per rule and matched row version
    alert_id: str = ""  # set once the match is grouped into an alert


@dataclass
class RuleFailure:
    rule_id: str
    alert_id: str | None  # the Graph alert id of the row the rule raised on
    error: str

    def __str__(self) -> str:
        if self.alert_id is None:
            return f"rule {self.rule_id} failed: {self.error}"
        return f"rule {self.rule_id} raised on alert {self.alert_id}: {self.error}"


@dataclass
class Evaluation:
    matches: list[Match] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)
    rows: int = 0


def evaluate(rules: list[Rule], rows: Iterable[Mapping[str, Any]]) -> Evaluation:
    result = Evaluation()
    for row in rows:
        result.rows += 1
        event = RuleEvent(row)
        for rule in rules:
            try:
                match = match_row(rule, event, row)
            except Exception as exc:  # noqa: BLE001 - a rule's bug is reported, never the batch's failure
                failure = RuleFailure(rule.rule_id, _text(row.get("id")), one_line(exc, with_type=True))
                log.error("graphlake.detections %s", failure)
                result.failures.append(failure)
                continue
            if match is not None:
                result.matches.append(match)
    return result


def match_row(rule: Rule, event: RuleEvent, row: Mapping[str, Any]) -> Match | None:
    """The match of one rule on one row, or None; whatever the rule's functions raise propagates."""
    if not rule.matches(event):
        return None
    title = rule.title(event)
    return Match(rule=rule, row=row, title=title, dedup=rule.dedup(event, title), severity=rule.alert_severity(event),
                 context=rule.alert_context(event), match_id=match_id(rule.rule_id, row))


def match_id(rule_id: str, row: Mapping[str, Any]) -> str:
    """The same rule on the same row version always gives the same id, so a redelivered batch deduplicates."""
    identity = _text(row.get("p_row_id")) or repr(sorted((k, repr(v)) for k, v in row.items()))
    return hashlib.blake2b(f"{rule_id}\0{identity}".encode(), digest_size=16).hexdigest()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
