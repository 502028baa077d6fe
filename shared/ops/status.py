"""`graphlake status`: every health record (pull, normalize, reconcile) and the quarantine, judged OK / LAGGING /
FAILING with the reason, so an operator sees an unattended deployment's state without reading logs.

FAILING: the last run failed (or gave a batch up, or the reconciliation found versions it could not repair), or a
source's watermark was ahead of the clock (repaired by the run that found it) or is ahead of this one.
LAGGING: it runs, but the lake falls behind Graph: the watermark is older than PULL_MAX_LAG_SECONDS (which also
catches a pull that stopped running), slices could not be confirmed complete, the reconciliation found alerts later
than the pull's overlap, or events wait in quarantine for `graphlake replay`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from shared.core import health
from shared.core.storage import Store

OK, LAGGING, FAILING = "OK", "LAGGING", "FAILING"
QUARANTINE_PREFIX = "quarantine/"
_RANK = {OK: 0, LAGGING: 1, FAILING: 2}
# The host running `graphlake status` may be a little behind the pull's; a watermark ahead of it by less than this
# is shown as ahead, not judged. Further ahead, the run that wrote it had a clock ahead of Graph's.
CLOCK_TOLERANCE_SECONDS = 60


@dataclass(frozen=True)
class Finding:
    component: str
    key: str
    state: str
    reason: str
    updated: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(state: Store, now: datetime, max_lag_seconds: float, sources: Iterable[str] = ()) -> list[Finding]:
    """Findings for every health record in `state`, its quarantine, and each of `sources` (the configured source
    ids) that has no pull record yet."""
    records, unreadable = health.load_all(state)
    quarantined = sum(1 for name in state.list(QUARANTINE_PREFIX) if name.endswith(".json"))
    findings = assess(records, quarantined, now, max_lag_seconds, sources)
    # An unreadable record hides what its writer last did, so it cannot be taken for OK; its writer replaces it on
    # the next run.
    findings += [Finding(component, key, FAILING, f"{reason}; its writer replaces it on its next run")
                 for (component, key), reason in sorted(unreadable.items())]
    return findings


def assess(records: dict[tuple[str, str], dict[str, Any]], quarantined: int, now: datetime,
           max_lag_seconds: float, sources: Iterable[str] = ()) -> list[Finding]:
    judges = {"pull": lambda doc: _pull(doc, now, max_lag_seconds), "normalize": _normalize, "reconcile": _reconcile,
              "detections": _detections}
    findings = []
    for (component, key), doc in sorted(records.items()):
        judge = judges.get(component)
        state, reason = judge(doc) if judge else (OK, "recorded")
        findings.append(Finding(component, key, state, reason, doc.get("updated")))
    pulled = {key for component, key in records if component == "pull"}
    findings += [Finding("pull", source, LAGGING, "no pull run recorded yet") for source in sources
                 if source not in pulled]
    if quarantined:
        findings.append(Finding("quarantine", "state", LAGGING,
                                f"{quarantined} events in quarantine: fix the cause, then graphlake replay"))
    return findings


def worst(findings: Iterable[Finding]) -> str:
    return max((f.state for f in findings), key=_RANK.__getitem__, default=OK)


def _failed(doc: dict[str, Any], what: str) -> tuple[str, str]:
    runs = int(doc.get("consecutive_failures") or 1)
    in_a_row = f"{runs} {what} in a row" if runs > 1 else f"last {what.removesuffix('s')}"
    return FAILING, f"{in_a_row} failed: {doc.get('error') or 'no details'}"


def _pull(doc: dict[str, Any], now: datetime, max_lag_seconds: float) -> tuple[str, str]:
    repaired = _repaired_ahead(doc)
    if doc.get("result") != "ok":
        state, reason = _failed(doc, "runs")
        return state, f"{reason}; {repaired}" if repaired else reason
    watermark = doc.get("watermark")
    if repaired:
        return FAILING, f"{repaired}; the watermark is now {watermark}"
    if not watermark:
        return LAGGING, "no slice completed yet"
    lag = (now - datetime.fromisoformat(watermark)).total_seconds()
    if lag < -CLOCK_TOLERANCE_SECONDS:
        return FAILING, (f"watermark {watermark} is {_duration(-lag)} ahead of this clock: the run that wrote it ran "
                         "on a clock ahead of Graph's (or the watermark was edited); the next run repairs it")
    problems = []
    if lag > max_lag_seconds:
        problems.append(f"watermark {watermark} is {_duration(lag)} behind (limit {_duration(max_lag_seconds)})")
    if doc.get("unconfirmed_slices"):
        problems.append(f"{doc['unconfirmed_slices']} slices could not be confirmed complete in the last run; "
                        "the next run reads them again")
    if problems:
        return LAGGING, "; ".join(problems)
    return OK, f"watermark {_behind_or_ahead(lag)}, {doc.get('sent', 0)} versions sent by the last run"


def _repaired_ahead(doc: dict[str, Any]) -> str | None:
    """The last run found the watermark ahead of its clock and put it back: loud once, since versions Graph
    showed late while the clock was ahead may have passed every window (the reconciliation looks for them)."""
    ahead = doc.get("watermark_ahead_seconds")
    if not ahead:
        return None
    return (f"watermark was {_duration(ahead)} ahead of the clock; repaired to {doc.get('watermark_repaired_to')} "
            "(now minus PULL_OVERLAP_SECONDS) and read from there")


def _normalize(doc: dict[str, Any]) -> tuple[str, str]:
    if doc.get("result") == "gave_up":
        return FAILING, (f"gave a batch up after retries ({doc.get('error') or 'no details'}); its "
                         f"{doc.get('quarantined', 0)} events are in quarantine")
    if doc.get("result") != "ok":
        return _failed(doc, "batches")
    return OK, f"last batch: {doc.get('rows', 0)} rows, {doc.get('quarantined', 0)} quarantined"


def _reconcile(doc: dict[str, Any]) -> tuple[str, str]:
    if doc.get("result") != "ok":
        return _failed(doc, "runs")
    missing, repaired, late = (int(doc.get(k) or 0) for k in ("missing", "repaired", "late_found"))
    if missing > repaired:
        return FAILING, f"{missing - repaired} versions Graph holds are missing from the lake and were not repaired"
    if late:
        return LAGGING, (f"{late} versions showed up in Graph later than the pull's overlap (repaired); raise "
                         "PULL_OVERLAP_SECONDS if this keeps happening")
    return OK, f"lake complete against Graph ({repaired} repaired)"


def _detections(doc: dict[str, Any]) -> tuple[str, str]:
    if doc.get("undelivered"):
        return FAILING, (f"{doc['undelivered']} alerts not delivered ({doc.get('error') or 'no details'}); they stay "
                         "queued and every run tries them again")
    if doc.get("rule_errors"):
        return LAGGING, f"{doc['rule_errors']} rule errors in the last run, first: {(doc.get('errors') or ['?'])[0]}"
    if "undelivered" in doc:
        return OK, f"every alert delivered ({doc.get('delivered', 0)} in the last run)"
    return OK, f"last run: {doc.get('rows', 0)} rows, {doc.get('matches', 0)} rule matches"


def _behind_or_ahead(lag: float) -> str:
    """A negative lag is a watermark ahead of this clock: said so, never shown as 0."""
    return f"{_duration(lag)} behind" if lag >= 0 else f"{_duration(-lag)} ahead of this clock"


def _duration(seconds: float) -> str:
    """A length of time, rounded to its largest unit; callers say which way (behind, ahead)."""
    seconds = abs(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
