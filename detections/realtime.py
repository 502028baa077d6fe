"""Rules on the new rows of a normalize batch, before the batch is acknowledged.

The wiring (function_app.py, the CLI) builds a `Detector` from the settings once (`build_detector`) and hands it to
every path that lands alerts (the Event Hub function, `graphlake normalize`, `graphlake pull` without an Event Hub,
replay, audit --repair); `shared.land.normalize.normalize_events` calls its `detect` with the tables it just wrote,
so they share this code. None (RULES_ENABLED off) runs nothing. A rule that raises is logged and recorded, and the
batch and the other rules go on; a storage failure raises like the normalizer's own, so the batch is delivered
again (match files and alert counts are idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

from shared.core import health

if TYPE_CHECKING:
    import pyarrow as pa

    from detections.destinations import Destination
    from detections.engine import RuleFailure
    from detections.loader import RuleSet
    from shared.core.settings import Settings
    from shared.core.storage import Store

log = logging.getLogger("graphlake.detections")


@dataclass
class DetectionResult:
    rows: int = 0
    matches: int = 0
    files: list[str] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)
    already_matched: int = 0  # matches of versions a rule had matched before: neither counted nor landed again
    alerts_queued: int = 0
    undelivered: int = 0


@dataclass(frozen=True)
class Detector:
    rules: RuleSet
    destinations: tuple[Destination, ...]
    # ALERT_DESTINATIONS that cannot be used: alerts are queued (nothing is lost) and the error is recorded, while
    # rules keep running and the lake keeps landing.
    destinations_error: str | None = None
    # How long landing may spend on deliveries per batch (ALERT_DELIVERY_BUDGET_SECONDS); the timer does the rest.
    delivery_budget_seconds: float = 2.0

    @property
    def sends(self) -> bool:
        return bool(self.destinations) or self.destinations_error is not None

    def config_errors(self) -> list[str]:
        """What the rule set's configuration keeps from happening, each with its fix: a refused rule never runs, and
        the alerts of a rule whose OutputIds name a destination ALERT_DESTINATIONS does not have cannot go there."""
        from detections.destinations import unknown_names

        refused = [f"rule refused: {r}; fix it (graphlake rules test)" for r in self.rules.refused]
        if not self.destinations:
            return refused
        unknown = {r.rule_id: unknown_names(r.output_ids, list(self.destinations)) for r in self.rules.rules
                   if r.enabled}
        return refused + [f"rule {rule_id}: OutputIds names unknown destination(s) {', '.join(names)}; fix OutputIds "
                          "or ALERT_DESTINATIONS" for rule_id, names in unknown.items() if names]

    def detect(self, tables: Sequence[pa.Table], *, lake: Store, state: Store,
               now: datetime) -> DetectionResult | None:
        """The real-time rules on the tables a batch just landed (`shared.land.detect.Detector`), in one evaluation:
        one health record for the batch, whatever tables its rows went to."""
        from detections.event import TableRows

        landed = [t for t in tables if t.num_rows]
        if not landed:
            return None
        return detect_rows(self, chain.from_iterable(TableRows(t) for t in landed), lake=lake, state=state, now=now)


def build_detector(settings: Settings, rules_dir: str | None = None, *,
                   rule_sets: Callable[[str | None], RuleSet] | None = None) -> Detector | None:
    """The detector the settings ask for, or None when detections are off. `rules_dir` (the CLI's --rules) turns
    them on with that folder, whatever RULES_ENABLED and RULES_DIR say. `rule_sets` loads a folder's rules
    (`load_rule_set`; the Function App keeps them between invocations)."""
    from detections.destinations import parse_destinations
    from shared.core.errors import ConfigError

    if not (settings.rules_enabled or rules_dir):
        return None
    rule_set = (rule_sets or load_rule_set)(rules_dir or settings.rules_dir or None)
    budget = settings.alert_delivery_budget_seconds
    try:
        return Detector(rule_set, tuple(parse_destinations(settings.alert_destinations, settings.named_setting)),
                        delivery_budget_seconds=budget)
    except ConfigError as exc:
        log.error("graphlake.detections %s; alerts wait in the outbox until it is fixed", exc)
        return Detector(rule_set, (), str(exc), budget)


def load_rule_set(folder: str | None) -> RuleSet:
    """The rules of `folder` with the starter pack (the pack alone for None); each refusal logged."""
    from detections.loader import load_rules

    rule_set = load_rules(folder)
    for refusal in rule_set.refused:
        log.error("graphlake.detections rule refused: %s", refusal)
    return rule_set


def detect_rows(detector: Detector, rows: Iterable[Mapping[str, Any]], *, lake: Store, state: Store,
                now: datetime) -> DetectionResult:
    from detections.engine import context_of, evaluate
    from detections.loader import RULE

    evaluation = evaluate(detector.rules.enabled(RULE), rows, context_of(detector.rules))
    return settle(detector, evaluation, lake=lake, state=state, now=now, component_key="realtime")


def deliver_queued(detector: Detector, state: Store, now: datetime) -> int:
    """Send everything the outbox holds (the timer's drain); the alerts still waiting."""
    from detections.delivery import deliver_pending, record_unsendable

    if detector.destinations_error is not None:
        return record_unsendable(state, detector.destinations_error, now)
    return deliver_pending(state, list(detector.destinations), now).undelivered


def settle(detector: Detector, evaluation, *, lake: Store, state: Store, now: datetime, component_key: str,
           deliver: bool = True) -> DetectionResult:
    """Matches into alerts, the rule_matches table and the outbox; the alerts just queued tried within the detector's
    delivery budget (unless the caller drains the outbox itself, once for several settles); the run's health."""
    from detections.alerts import record_matches
    from detections.delivery import deliver_new, enqueue, record_unsendable
    from detections.matched import mark, unmatched
    from detections.matches import write_matches
    from detections.rule_errors import error_matches, write_errors

    result = DetectionResult(rows=evaluation.rows, matches=len(evaluation.matches), failures=evaluation.failures)
    fresh = unmatched(state, evaluation.matches)
    result.already_matched = len(evaluation.matches) - len(fresh)
    errors = unmatched(state, error_matches(evaluation.failures, detector.rules.rules))
    # CreateAlert: false: the match is recorded (rule_matches) and no alert is made.
    queued = record_matches(state, [m for m in fresh if m.rule.create_alert] + errors, now)
    result.files = write_matches(lake, fresh, now) + write_errors(lake, errors, now)
    # destinations() gave []: no alert sent, as Panther.
    alerts = [item.alert for item in queued if item.alert.get("destinations") != []] if detector.sends else []
    batch = enqueue(state, alerts) if alerts else None
    result.alerts_queued = len(alerts)
    # Only now: a crash before this line leaves the matches unmarked, so the batch delivered again redoes them.
    mark(state, fresh + errors, now)
    if detector.sends and deliver:
        if detector.destinations_error is not None:
            result.undelivered = record_unsendable(state, detector.destinations_error, now, len(alerts))
        else:
            result.undelivered = deliver_new(state, list(detector.destinations), batch, len(alerts), now,
                                             budget_seconds=detector.delivery_budget_seconds).undelivered
    misconfigured = detector.config_errors()
    health.record(state, "detections", component_key, {
        "result": "config_errors" if misconfigured else "rule_errors" if evaluation.failures else "ok",
        "rows": evaluation.rows, "matches": len(evaluation.matches), "already_matched": result.already_matched,
        "rule_errors": len(evaluation.failures), "config_errors": len(misconfigured),
        "errors": (misconfigured + [str(f) for f in evaluation.failures])[:10]}, now=now)
    return result
