"""`graphlake rules test`: every rule's Tests, as panther_analysis_tool runs them.

A real-time rule's test Log is a Graph alert: it goes through the normalizer first, so the rule sees exactly the
row it would see in production (p_any_* lists, timestamps as datetimes, evidence parsed from the stored JSON). A
test passes when rule() returns ExpectedResult and, when it matches, title/dedup/severity/alert_context run without
raising. A scheduled rule's test gives `Logs`, the alerts of a small lake its query runs over; it passes when the
rule matches at least one result row exactly when ExpectedResult is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from detections.engine import match_row
from detections.event import RuleEvent
from detections.loader import RULE, Rule, RuleSet, RuleTest
from shared.errors import one_line

# Rows built for tests carry this parse time, so a test's result never depends on the clock.
TEST_PARSE_TIME = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class TestResult:
    rule_id: str
    name: str
    passed: bool
    detail: str  # what happened, one line

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.rule_id}: {self.name}  ({self.detail})"


def run_tests(rule_set: RuleSet) -> list[TestResult]:
    results = []
    for rule in sorted(rule_set.rules, key=lambda r: r.rule_id):
        for test in rule.tests:
            results.append(run_test(rule, test))
    return results


def run_test(rule: Rule, test: RuleTest) -> TestResult:
    try:
        matched = _realtime(rule, test) if rule.kind == RULE else _scheduled(rule, test)
    except Exception as exc:  # noqa: BLE001 - a test that raises fails, with the reason
        return TestResult(rule.rule_id, test.name, False, f"raised {one_line(exc, with_type=True)}")
    passed = matched == test.expected
    return TestResult(rule.rule_id, test.name, passed, f"expected {test.expected}, got {matched}")


def _realtime(rule: Rule, test: RuleTest) -> bool:
    from normalizers import normalize_alert

    row = normalize_alert(test.log, source_id=None, source_label="rules test", parse_time=TEST_PARSE_TIME)
    return match_row(rule, RuleEvent(row), row) is not None


def _scheduled(rule: Rule, test: RuleTest) -> bool:
    from detections.scheduled import test_matches

    return bool(test_matches(rule, test.log, test.now))
