"""Evaluating rules on rows as Panther's engine does (panther-core's `Detection.run`).

`run_rule` is that evaluation, in Panther's two modes: in production (`batch`), a title, dedup, severity,
description, reference, runbook, destinations or alert_context function that raises or returns the wrong type
falls back to its default and the match is kept; in a test, every function runs and its error fails a test that
expects a match. `rule()` must return a bool, as in Panther; one that raises (or returns something else) is a rule
error: reported, recorded, made an alert of its own (detections/rule_errors.py), never the batch's failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detections.event import EventContext, FrozenList, RuleEvent
from detections.loader import RULE_CODE_ERRORS, SEVERITIES, Rule, RuleSet
from shared.core.errors import one_line

log = logging.getLogger("graphlake.detections")

# panther-core's limits and defaults.
MAX_GENERATED_FIELD_SIZE = 1000  # title, dedup, description, reference, runbook
MAX_ALERT_CONTEXT_SIZE = 200 * 1024
TRUNCATED = "... (truncated)"
AUXILIARY = ("title", "description", "reference", "severity", "runbook", "destinations", "dedup", "alert_context")
_SEVERITY_BY_UPPER = {s.upper(): s for s in SEVERITIES}


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
    description: str = ""  # description(), runbook(), reference(): the YAML's unless the function gave text
    runbook: str = ""
    reference: str = ""
    destinations: list[str] | None = None  # destinations(): None for the rule's (OutputIds, else all); [] for none
    summary: dict[str, Any] = field(default_factory=dict)  # SummaryAttributes: attribute -> value in this row
    alert_type: str = "RULE"  # or RULE_ERROR (detections/rule_errors.py)


@dataclass
class RuleFailure:
    rule_id: str
    alert_id: str | None  # the Graph alert id of the row the rule raised on
    error: str
    error_type: str = ""  # the exception's class name: rule-error alerts are one per rule and error type
    row: Mapping[str, Any] | None = None  # the row it raised on, when there is one
    subject: str = ""  # that row in words (_failure_subject); empty for a failure of the whole rule (its query)

    def __str__(self) -> str:
        if not self.subject:
            return f"rule {self.rule_id} failed: {self.error}"
        return f"rule {self.rule_id} raised on {self.subject}: {self.error}"


@dataclass
class Evaluation:
    matches: list[Match] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)
    rows: int = 0


@dataclass
class Outcome:
    """One rule on one event: panther-core's DetectionResult, with what graphlake uses of it."""

    output: Any = None  # what rule() returned (None when it raised)
    error: BaseException | None = None  # rule() (or an inline filter) raised or returned a non-bool
    triggered: bool = False
    values: dict[str, Any] = field(default_factory=dict)  # auxiliary function -> its output (or fallback)
    errors: dict[str, BaseException] = field(default_factory=dict)  # auxiliary function -> its error (tests)


class FunctionReturnTypeError(TypeError):
    """A rule function returned a type Panther refuses (panther-core's error of the same name)."""


def evaluate(rules: list[Rule], rows: Iterable[Mapping[str, Any]], context: EventContext | None = None) -> Evaluation:
    """The rules on the rows; a rule runs only on rows whose p_log_type is one of its LogTypes, as in Panther (an
    alert rule never meets a sign-in)."""
    result = Evaluation()
    by_log_type: dict[Any, list[Rule]] = {}
    for row in rows:
        result.rows += 1
        log_type = row.get("p_log_type")
        applicable = by_log_type.get(log_type)
        if applicable is None:
            applicable = by_log_type[log_type] = [r for r in rules if log_type in r.log_types]
        if not applicable:
            continue
        event = RuleEvent(row, context)
        for rule in applicable:
            match, failure = match_row(rule, event, row)
            if failure is not None:
                log.error("graphlake.detections %s", failure)
                result.failures.append(failure)
            elif match is not None:
                result.matches.append(match)
    return result


def context_of(rule_set: RuleSet) -> EventContext:
    """What the rule set's events carry: its data models and lookup tables."""
    return EventContext(rule_set.data_models, rule_set.lookups)


def match_row(rule: Rule, event: RuleEvent, row: Mapping[str, Any]) -> tuple[Match | None, RuleFailure | None]:
    """The match of one rule on one row (or None), or the rule's failure on it."""
    outcome = run_rule(rule, event, batch=True)
    if outcome.error is not None:
        return None, RuleFailure(rule.rule_id, row_text(row.get("id")), one_line(outcome.error, with_type=True),
                                 type(outcome.error).__name__, row, _failure_subject(row))
    if not outcome.triggered:
        return None, None
    values = outcome.values
    title = values.get("title") or rule.display_name or rule.rule_id
    return Match(rule=rule, row=row, title=title, dedup=values["dedup"], severity=values.get("severity") or
                 rule.severity, context=values.get("alert_context") or {}, match_id=match_id(rule.rule_id, row),
                 description=values.get("description") or rule.description,
                 runbook=values.get("runbook") or rule.runbook, reference=values.get("reference") or rule.reference,
                 destinations=values.get("destinations"), summary=summary(rule, event)), None


# The columns that name a scheduled rule's result row (the pack's correlations return one of them).
_RESULT_ROW_KEYS = ("id", "alert_id", "user", "ip", "device")


def _failure_subject(row: Mapping[str, Any]) -> str:
    """The row a rule raised on, in words: a lake row is an alert (its id) or a log record (its p_row_id); a scheduled
    rule's result row (no p_log_type) is no alert, named by its first naming column."""
    if row.get("p_log_type") is not None:
        if row.get("id") is not None:
            return f"alert {row['id']}"
        return f"{row['p_log_type']} record {row.get('p_row_id')}"
    key = next((k for k in _RESULT_ROW_KEYS if row.get(k) is not None), None)
    return f"result row {key}={row[key]}" if key else "a result row"


def passes_inline_filters(rule: Rule, event: RuleEvent) -> bool:
    """The rule's InlineFilters, run before rule() as Panther runs them; without any, every event passes."""
    return rule.inline_filter is None or bool(rule.inline_filter(event))


def run_rule(rule: Rule, event: RuleEvent, *, batch: bool) -> Outcome:
    """panther-core's Detection.run: `batch` is production (auxiliary functions only on a match, each falling back
    on error); otherwise a test (every function runs; errors are kept for the verdict)."""
    outcome = Outcome()
    module = rule.module
    try:
        if not passes_inline_filters(rule, event):
            outcome.output = False
        elif module is None or not hasattr(module, "rule"):
            outcome.output = True  # a scheduled rule without Python: every result row matches
        else:
            outcome.output = _typed(module.rule(event), bool, "rule", rule)
    except RULE_CODE_ERRORS as exc:  # a rule's error is an outcome, never the batch's failure
        outcome.output, outcome.error = None, exc
    outcome.triggered = outcome.output is True
    if batch and not outcome.triggered:
        return outcome
    for name in AUXILIARY:
        if name == "dedup" and not _defined(module, "dedup"):
            outcome.values["dedup"] = outcome.values.get("title") or default_dedup(rule)
            continue
        if not _defined(module, name):
            continue
        try:
            outcome.values[name] = _AUXILIARY[name](getattr(module, name)(event), rule)
        except RULE_CODE_ERRORS as exc:  # Panther's fallbacks below
            if not batch:
                outcome.errors[name] = exc
                continue
            log.info("graphlake.detections %s's %s raised, its default is used: %s", rule.rule_id, name,
                     one_line(exc, with_type=True))
            outcome.values[name] = _fallback(name, rule, exc)
    return outcome


def default_dedup(rule: Rule) -> str:
    return f"defaultDedupString:{rule.rule_id}"


def _defined(module: Any, name: str) -> bool:
    return module is not None and hasattr(module, name)


def _typed(value: Any, kind: type, function: str, rule: Rule) -> Any:
    if not isinstance(value, kind):
        raise FunctionReturnTypeError(f"detection [{rule.rule_id}] function [{function}] returned "
                                      f"[{type(value).__name__}], expected [{kind.__name__}]")
    return value


def _truncated(text: str) -> str:
    if len(text) > MAX_GENERATED_FIELD_SIZE:
        return text[:MAX_GENERATED_FIELD_SIZE - len(TRUNCATED)] + TRUNCATED
    return text


def _text_of(function: str) -> Any:
    return lambda value, rule: _truncated(_typed(value, str, function, rule))


def _dedup(value: Any, rule: Rule) -> str:
    text = _typed(value, str, "dedup", rule)
    return _truncated(text) if text else default_dedup(rule)


def _severity(value: Any, rule: Rule) -> str:
    upper = _typed(value, str, "severity", rule).upper()
    if upper == "DEFAULT":
        return rule.severity
    if upper not in _SEVERITY_BY_UPPER:
        raise AssertionError(f"Expected severity to be any of {list(_SEVERITY_BY_UPPER)}, got [{upper}] instead.")
    return _SEVERITY_BY_UPPER[upper]


def _destinations(value: Any, rule: Rule) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | FrozenList) or not all(isinstance(v, str | bool) for v in value):
        raise FunctionReturnTypeError(f"detection [{rule.rule_id}] function [destinations] returned "
                                      f"[{type(value).__name__}], expected a list")
    return [str(v) for v in value]


def _alert_context(value: Any, rule: Rule) -> dict[str, Any]:
    context = plain(_typed(value, Mapping, "alert_context", rule))
    # Serialized as panther-core does, so the same contexts fail (NaN, a datetime) and the limit counts the same text.
    size = len(json.dumps(context, allow_nan=False))
    if size > MAX_ALERT_CONTEXT_SIZE:
        return {"_error": f"alert_context size is [{size}] characters, bigger than maximum of "
                          f"[{MAX_ALERT_CONTEXT_SIZE}] characters"}
    return context


_AUXILIARY = {"title": _text_of("title"), "description": _text_of("description"),
              "reference": _text_of("reference"), "runbook": _text_of("runbook"), "severity": _severity,
              "destinations": _destinations, "dedup": _dedup, "alert_context": _alert_context}


def _fallback(name: str, rule: Rule, exc: BaseException) -> Any:
    """Panther's default when a function fails in production."""
    return {"title": rule.rule_id, "dedup": default_dedup(rule), "severity": rule.severity,
            "alert_context": {"_error": repr(exc)}, "destinations": None}.get(name, "")


def plain(value: Any) -> Any:
    """A value a rule returned (frozen event parts included) as plain JSON-able Python."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, FrozenList | list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def summary(rule: Rule, event: RuleEvent) -> dict[str, Any]:
    """SummaryAttributes' values in this event: `a:b` is a nested field, as in Panther."""
    out = {}
    for attribute in rule.summary_attributes:
        value = event.deep_get(*attribute.split(":"))
        if value is not None:
            out[attribute] = plain(value)
    return out


def match_id(rule_id: str, row: Mapping[str, Any]) -> str:
    """The same rule on the same row version always gives the same id, so a redelivered batch deduplicates."""
    identity = row_text(row.get("p_row_id")) or repr(sorted((k, repr(v)) for k, v in row.items()))
    return hashlib.blake2b(f"{rule_id}\0{identity}".encode(), digest_size=16).hexdigest()


def row_id(row: Mapping[str, Any]) -> str | None:
    """What names the matched row in rule_matches and rule_errors: a Graph alert's id; a log record has none, so its
    p_row_id (a search over rule_matches keeps one hit per id, and every log record would share the empty one)."""
    return row_text(row.get("id")) or row_text(row.get("p_row_id"))


def row_text(value: Any) -> str | None:
    """A row's value as text for the detections' tables and markers (str(), not shared.core.json_text's JSON text of
    a Graph value); None stays None."""
    return None if value is None else str(value)
