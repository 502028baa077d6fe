"""`graphlake rules test`: every rule's Tests, with panther_analysis_tool's verdicts.

A real-time rule's test Log is a Graph alert or, for Azure.Audit and Azure.MonitorActivity, an Azure Monitor record:
it goes through its normalizer first, so the rule sees exactly the event it would see in production
(detections/event.py: p_any_* lists, timestamps as Panther renders them, evidence and `properties` parsed, both
spellings of `@odata.type`). The verdict is panther_analysis_tool's: every function of the rule runs;
a test expecting a match passes when rule() returned True and no function raised or returned a wrong type; a test
expecting none passes when rule() returned False (a rule that raises fails either). `Mocks` replace names of the
rule's module for the test (`objectName` by a function returning `returnValue`), as panther_analysis_tool's
`patch.multiple` does; a data model applies when the Log names its `p_log_type`, as there; `event.lookup` reads
the Log's `_mocked_lookup_data_`. A scheduled rule's test gives `Logs`, the alerts of a small lake its query runs
over; it passes when the rule matches at least one result row exactly when ExpectedResult is true. A Panther
scheduled rule's test (`ScheduledQueries`) gives `Log`, one result row, and its Python runs on that row, as Panther
tests it.

Rule-level unit tests, Python `unittest` files named `*_test.py` anywhere in a rules folder (as panther-analysis
keeps `global_helpers/global_helpers_test.py`), run too, with the folder's global helpers importable, each test
case a result; a file that cannot be imported fails, except one importing a package that is not installed
(Panther's `panther_core`, `boto3`): that one is a SKIP line, counted in the summary, neither passed nor failed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import MagicMock, patch

from detections.engine import run_rule
from detections.event import ENRICHMENT, MOCKED_LOOKUPS, EventContext, RuleEvent
from detections.loader import LOG_TYPES, RULE, RULE_CODE_ERRORS, Rule, RuleSet, RuleTest, helper_dirs, importable
from normalizers.names import LOG_TYPE as ALERT_LOG_TYPE
from shared.core.errors import one_line

# Rows built for tests carry this parse time, so a test's result never depends on the clock.
TEST_PARSE_TIME = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class TestResult:
    rule_id: str
    name: str
    passed: bool
    detail: str  # what happened, one line
    skipped: bool = False  # a unit test file importing a package that is not installed: not run, and said so

    def line(self) -> str:
        word = "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"
        return f"{word}  {self.rule_id}: {self.name}  ({self.detail})"


def run_tests(rule_set: RuleSet) -> list[TestResult]:
    results = []
    for rule in sorted(rule_set.rules, key=lambda r: r.rule_id):
        for test in rule.tests:
            results.append(run_test(rule, test, rule_set))
    for folder in rule_set.folders:
        results += run_unit_tests(folder)
    return results


def run_unit_tests(folder: Path) -> list[TestResult]:
    """The unittest cases of the folder's `*_test.py` files, in any subfolder, each imported with its own folder
    and the global helpers importable (unittest's discovery would skip folders that are not packages)."""
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*_test.py") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    results = []
    for path in files:
        results += _unit_test_file(folder, path)
    return results


def _unit_test_file(folder: Path, path: Path) -> list[TestResult]:
    label = str(path.relative_to(folder))
    name = f"graphlake_unit_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}_{path.stem}"
    collected = unittest.TestResult()
    with importable([path.parent, *(d for d in helper_dirs(folder) if d != path.parent)]):
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[name] = module
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            suite = unittest.defaultTestLoader.loadTestsFromModule(module)
        except ModuleNotFoundError as exc:
            if exc.name and not _in_folder(folder, exc.name):
                # A package of Panther's runtime (panther_core, boto3) that is not installed: not a helper of the
                # folder misspelt. Not run, counted, never passed.
                return [TestResult("unit", label, False, f"not run: it imports {exc.name}, which is not installed",
                                   skipped=True)]
            return [TestResult("unit", label, False, f"cannot import: {one_line(exc, with_type=True)}")]
        except RULE_CODE_ERRORS as exc:  # a test file that cannot be imported fails, with the reason
            return [TestResult("unit", label, False, f"cannot import: {one_line(exc, with_type=True)}")]
        finally:
            sys.modules.pop(name, None)
        cases = _cases(suite)  # before running: a suite lets go of its cases as it runs them
        suite.run(collected)
    failed = {case.id(): trace for case, trace in collected.failures + collected.errors}
    results = [TestResult("unit", f"{label}: {_short(case_id)}", False, _last_line(trace))
               for case_id, trace in failed.items()]
    for case in cases:
        if case.id() not in failed:
            results.append(TestResult("unit", f"{label}: {_short(case.id())}", True, "passed"))
    return results


def _in_folder(folder: Path, module: str) -> bool:
    top = module.split(".")[0]
    return any(True for _ in folder.rglob(f"{top}.py")) or any(p.is_dir() for p in folder.rglob(top))


def _short(case_id: str) -> str:
    """A case id without the module's generated name: Class.test_name."""
    return case_id.split(".", 1)[1] if case_id.startswith("graphlake_unit_") else case_id


def _cases(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    out = []
    for item in suite:
        out += _cases(item) if isinstance(item, unittest.TestSuite) else [item]
    return out


def _last_line(trace: str) -> str:
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return one_line(lines[-1] if lines else "failed")


def run_test(rule: Rule, test: RuleTest, rule_set: RuleSet | None = None) -> TestResult:
    if rule.kind == RULE:
        return _realtime(rule, test, rule_set)
    if isinstance(test.log, dict):  # a Panther scheduled rule's test: one result row, the rule's Python on it
        return _verdict(rule, test, RuleEvent(test.log, data_model=None))
    try:
        matched = _scheduled(rule, test)
    except Exception as exc:  # noqa: BLE001 - a test that raises fails, with the reason
        return TestResult(rule.rule_id, test.name, False, f"raised {one_line(exc, with_type=True)}")
    passed = matched == test.expected
    return TestResult(rule.rule_id, test.name, passed, f"expected {test.expected}, got {matched}")


def is_log_record(log: dict, log_types: list[str]) -> bool:
    """Whether a test's Log is an Azure Monitor record (for the log tables' normalizer) rather than a Graph alert:
    its `p_log_type` says so, else the rule's LogTypes do when they are the logs' alone, else an `operationName`
    (every Azure Monitor record has one, no alert has)."""
    named = log.get("p_log_type")
    if isinstance(named, str) and named in LOG_TYPES:
        return named != ALERT_LOG_TYPE
    if ALERT_LOG_TYPE not in log_types:
        return True
    return len(log_types) > 1 and any(isinstance(k, str) and k.lower() == "operationname" for k in log)


def test_row(log: dict, log_types: list[str]) -> dict:
    """The row production would make of a test's Log: an alert through the alerts' normalizer, an Azure Monitor
    record through the log tables' (so a rule's test sees what a rule sees in the lake)."""
    if is_log_record(log, log_types):
        from normalizers.logs import normalize_record

        return normalize_record(log, source_id=None, source_label="rules test", parse_time=TEST_PARSE_TIME)[1]
    from normalizers import normalize_alert

    return normalize_alert(log, source_id=None, source_label="rules test", parse_time=TEST_PARSE_TIME)


def _realtime(rule: Rule, test: RuleTest, rule_set: RuleSet | None) -> TestResult:
    def result(passed: bool, detail: str) -> TestResult:
        return TestResult(rule.rule_id, test.name, passed, detail)

    named = test.log.get("p_log_type")
    if isinstance(named, str) and named not in LOG_TYPES:
        # A rule of several log types (Panther's Kubernetes rules: EKS, GKE and AKS) tested on a log graphlake never
        # lands: no row of that log type ever reaches the rule here. Not run, said, counted, never passed.
        return TestResult(rule.rule_id, test.name, False, f"not run: its Log is {named}, a log type graphlake does "
                          "not hold", skipped=True)
    category = test.log.get("category")
    if isinstance(category, str) and category and is_log_record(test.log, rule.log_types):
        from normalizers.logs import lands

        if not lands(category):
            # Production never hands the rule such a record (it is quarantined with its reason): not run, said,
            # counted, never passed.
            return TestResult(rule.rule_id, test.name, False, f"not run: its Log is a record of category "
                              f"{category!r}, which graphlake does not land", skipped=True)
    try:
        row = test_row(test.log, rule.log_types)
    except Exception as exc:  # noqa: BLE001 - a Log the normalizer refuses fails its test, with the reason
        what = "an Azure Monitor record" if is_log_record(test.log, rule.log_types) else "an alert"
        return result(False, f"Log is not {what} the normalizer takes: {one_line(exc, with_type=True)}")
    models = rule_set.data_models if rule_set is not None else {}
    mocked, enrichment = test.log.get(MOCKED_LOOKUPS), test.log.get(ENRICHMENT)
    context = EventContext(models, rule_set.lookups if rule_set is not None else None,
                           mocked if isinstance(mocked, dict) else {},
                           enrichment if isinstance(enrichment, dict) else None)
    log_type = test.log.get("p_log_type")
    return _verdict(rule, test, RuleEvent(row, context, data_model=models.get(log_type) if isinstance(log_type, str)
                                          else None))


def _verdict(rule: Rule, test: RuleTest, event: RuleEvent) -> TestResult:
    """panther_analysis_tool's verdict on the rule's functions run on one event, with the test's Mocks."""
    def result(passed: bool, detail: str) -> TestResult:
        return TestResult(rule.rule_id, test.name, passed, detail)

    missing = [m["objectName"] for m in test.mocks if "objectName" in m and not hasattr(rule.module, m["objectName"])]
    if missing:  # patch.multiple refuses a name the module does not have: the test fails in Panther's tool too
        return result(False, f"Mocks: {Path(rule.module.__file__ or '').name} has no name {', '.join(missing)}")
    with _mocked(rule, test.mocks):
        outcome = run_rule(rule, event, batch=False)
    got = outcome.output
    if outcome.error is not None:
        return result(False, f"expected {test.expected}, rule raised {one_line(outcome.error, with_type=True)}")
    if test.expected:
        if outcome.errors:
            name, exc = next(iter(outcome.errors.items()))
            return result(False, f"expected True, got {got}; {name} raised {one_line(exc, with_type=True)}")
        return result(outcome.triggered, f"expected True, got {got}")
    return result(got is False, f"expected False, got {got}")


@contextmanager
def _mocked(rule: Rule, mocks: list[dict]) -> Iterator[None]:
    replacements = {m["objectName"]: MagicMock(return_value=m["returnValue"]) for m in mocks
                    if "objectName" in m and "returnValue" in m}
    if not replacements or rule.module is None:
        yield
        return
    with patch.multiple(rule.module, **replacements):
        yield


def _scheduled(rule: Rule, test: RuleTest) -> bool:
    from detections.scheduled import test_matches

    return bool(test_matches(rule, test.log, test.now))
