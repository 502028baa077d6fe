"""The `graphlake rules` commands' work, printed through `say`; each returns the exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from detections.loader import RuleSet, load_rules

if TYPE_CHECKING:
    from shared.core.settings import LakeAccess

Say = Callable[..., None]


def load_reporting(rules_dir: str | None, say: Say) -> RuleSet:
    rule_set = load_rules(rules_dir)
    for refusal in rule_set.refused:
        say(f"graphlake: rule refused: {refusal}", err=True)
    if rule_set.passed_over:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(rule_set.passed_over.items()))
        say(f"graphlake: files of other analysis types passed over ({kinds})", err=True)
    if rule_set.other_log_types:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(rule_set.other_log_types.items()))
        say(f"graphlake: {rule_set.other_log_type_rules} rules for log types graphlake does not hold passed over "
            f"(by log type or Panther table: {kinds})", err=True)
    return rule_set


def test_command(rules_dir: str | None, say: Say) -> int:
    """`rules_dir`: the user's folder on top of the starter pack (None: the pack alone)."""
    from detections.testing import run_tests

    rule_set = load_reporting(rules_dir, say)
    results = run_tests(rule_set)
    for result in results:
        say(result.line())
    failed = sum(not r.passed and not r.skipped for r in results)
    skipped_units = sum(r.skipped and r.rule_id == "unit" for r in results)
    skipped_tests = sum(r.skipped and r.rule_id != "unit" for r in results)
    untested = [r.rule_id for r in rule_set.rules if not r.tests]
    say(f"{sum(r.passed for r in results)} passed, {failed} failed, "
        + (f"{skipped_tests} tests not run (their Log is of a log type or a category graphlake does not land), "
           if skipped_tests else "")
        + (f"{skipped_units} unit test files not run (they import packages not installed), " if skipped_units else "")
        + f"{len(rule_set.refused)} rules refused, {len(rule_set.rules)} rules loaded"
        + (f"; without tests: {', '.join(sorted(untested))}" if untested else ""))
    return 1 if failed or rule_set.refused else 0


def backtest_command(rules_dir: str | None, lake_url: str, since, until, fmt: str, say: Say, *,
                     access: LakeAccess | None = None, list_alerts: bool = False) -> int:
    """`list_alerts`: each rule's alerts too (JSON: an `alert_list` per rule; table: one line per alert)."""
    import dataclasses

    import orjson

    from detections.backtest import backtest

    rule_set = load_reporting(rules_dir, say)
    result = backtest(rule_set, lake_url, since, until, access=access)
    if fmt == "json":
        for rule in result.rules:
            doc = dataclasses.asdict(rule)
            if not list_alerts:
                del doc["alert_list"]
            say(orjson.dumps(doc).decode())
    else:
        width = max([len(r.rule_id) for r in result.rules] + [4])
        say(f"{'rule'.ljust(width)}  kind            enabled  matches  alerts  errors")
        for r in result.rules:
            say(f"{r.rule_id.ljust(width)}  {r.kind:<14}  {'yes' if r.enabled else 'no':<7}  {r.matches:>7}  "
                f"{r.alerts:>6}  {r.errors:>6}")
        if list_alerts:
            say("\nalerts (id, first match .. last match UTC, matches, title):")
            for r in result.rules:
                for a in r.alert_list:
                    say(f"{r.rule_id}  {a.alert_id}  {a.first_match:%Y-%m-%d %H:%M:%S} .. "
                        f"{a.last_match:%Y-%m-%d %H:%M:%S}  {a.matches}  {a.title}")
    for failure in result.failures[:10]:
        say(f"graphlake: {failure}", err=True)
    tables = ", ".join(f"{table} {n}" for table, n in sorted(result.table_rows.items()))
    say(f"{result.rows} rows backtested" + (f" ({tables})" if tables else "") + f", {since:%Y-%m-%d %H:%M} to "
        f"{until:%Y-%m-%d %H:%M} UTC; nothing written, no alert sent", err=fmt == "json")
    return 1 if result.failures or rule_set.refused else 0
