"""`graphlake status`: every health record (pull, normalize, reconcile, compact) and the quarantine, judged OK / LAGGING /
FAILING with the reason, so an operator sees an unattended deployment's state without reading logs.

FAILING: the last run failed (or gave a batch up, or the reconciliation found versions it could not repair), a
source's watermark was ahead of the clock (repaired by the run that found it) or is ahead of this one, or the last
pull ran on a clock ahead of Graph's by more than PULL_MAX_CLOCK_SKEW_SECONDS.
LAGGING: it runs, but the lake falls behind Graph: the watermark is older than PULL_MAX_LAG_SECONDS (which also
catches a pull that stopped running), slices could not be confirmed complete, the last pull ran on a clock behind
Graph's by more than PULL_MAX_CLOCK_SKEW_SECONDS, the reconciliation found alerts later than the pull's overlap, or
events wait in quarantine for `graphlake replay`; or streamed logs stopped landing for longer than
LOGS_MAX_SILENCE_SECONDS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.core import health
from shared.core.settings import Settings
from shared.core.storage import Store
from shared.land.quarantine import PREFIX as QUARANTINE_PREFIX

OK, LAGGING, FAILING = "OK", "LAGGING", "FAILING"
# host.json's extensions.eventHubs.maxWaitTime: the longest a sent event waits for the trigger to take its batch.
TRIGGER_MAX_WAIT_SECONDS = 5
# How many of those waits a normalizer may fall behind the pull's last send. A pull's record is written when its run
# ends, after its last send by the rest of the run (the watermark, a slice that had nothing to send), and a batch
# takes a while to normalize: a minute covers both, and still shows a stopped normalizer well before the next pull.
NORMALIZER_LAG_WAITS = 12
_RANK = {OK: 0, LAGGING: 1, FAILING: 2}
# The host running `graphlake status` may be a little behind the pull's; a watermark ahead of it by less than this
# is shown as ahead, not judged. Further ahead, the run that wrote it had a clock ahead of Graph's.
CLOCK_TOLERANCE_SECONDS = 60
_MAX_CLOCK_SKEW_SECONDS = Settings.model_fields["pull_max_clock_skew_seconds"].default


@dataclass(frozen=True)
class Finding:
    component: str
    key: str
    state: str
    reason: str
    updated: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(state: Store, now: datetime, max_lag_seconds: float, sources: Iterable[str] = (), *,
          event_hub: bool = False, logs_max_silence_seconds: float | None = None,
          max_clock_skew_seconds: float = _MAX_CLOCK_SKEW_SECONDS) -> list[Finding]:
    """Findings for every health record in `state`, its quarantine, and each of `sources` (the configured source
    ids) that has no pull record yet. `event_hub`, `logs_max_silence_seconds`: see assess."""
    records, unreadable = health.load_all(state)
    quarantined = sum(1 for name in state.list(QUARANTINE_PREFIX) if name.endswith(".json"))
    findings = assess(records, quarantined, now, max_lag_seconds, sources, event_hub=event_hub,
                      logs_max_silence_seconds=logs_max_silence_seconds,
                      max_clock_skew_seconds=max_clock_skew_seconds)
    # An unreadable record hides what its writer last did, so it cannot be taken for OK; its writer replaces it on
    # the next run.
    findings += [Finding(component, key, FAILING, f"{reason}; its writer replaces it on its next run")
                 for (component, key), reason in sorted(unreadable.items())]
    return findings


def assess(records: dict[tuple[str, str], dict[str, Any]], quarantined: int, now: datetime,
           max_lag_seconds: float, sources: Iterable[str] = (), *, event_hub: bool = False,
           logs_max_silence_seconds: float | None = None,
           max_clock_skew_seconds: float = _MAX_CLOCK_SKEW_SECONDS) -> list[Finding]:
    """Judges each record, and the normalizer as a whole against the pulls' last send. Without normalize records
    that needs `event_hub` (the deployment sends to Event Hubs): a pull into the in-process normalizer lands
    itself and writes none. `logs_max_silence_seconds` (LOGS_MAX_SILENCE_SECONDS; None: not judged) judges
    streamed logs that stopped arriving."""
    # normalize_logs (Azure Monitor's records) keeps the same records as normalize, so it is judged the same way.
    judges = {"pull": lambda doc: _pull(doc, now, max_lag_seconds, max_clock_skew_seconds), "normalize": _normalize,
              "normalize_logs": _normalize, "reconcile": _reconcile, "detections": _detections, "compact": _compact}
    findings = []
    for (component, key), doc in sorted(records.items()):
        judge = judges.get(component)
        state, reason = judge(doc) if judge else (OK, "recorded")
        findings.append(Finding(component, key, state, reason, doc.get("updated")))
    consumer = _normalizer_lag(records, now, event_hub)
    if consumer:
        findings.append(consumer)
    silent = _logs_silence(records, now, logs_max_silence_seconds)
    if silent:
        findings.append(silent)
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


def _pull(doc: dict[str, Any], now: datetime, max_lag_seconds: float,
          max_clock_skew_seconds: float) -> tuple[str, str]:
    repaired = _repaired_ahead(doc)
    if doc.get("result") != "ok":
        state, reason = _failed(doc, "runs")
        return state, f"{reason}; {repaired}" if repaired else reason
    watermark = doc.get("watermark")
    if repaired:
        return FAILING, f"{repaired}; the watermark is now {watermark}"
    skew = float(doc.get("clock_skew_seconds") or 0)
    if skew > max_clock_skew_seconds:
        # The pull's watermark stops at Graph's time, but a proxy that ever strips the Date header would let it pass
        # what Graph stamps next; and everything else this host dates (health records, lags, signed deliveries) is
        # as far off.
        return FAILING, (f"the pull's clock is {_duration(skew)} ahead of Graph's (its Date header "
                         f"{doc.get('graph_date')}; limit {_duration(max_clock_skew_seconds)}): fix the host's time "
                         f"sync; the watermark {watermark} waits at Graph's time meanwhile")
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
    if skew < -max_clock_skew_seconds:
        # Each window ends at the pull's now: what Graph stamped since waits that long for the next runs.
        problems.append(f"the pull's clock is {_duration(-skew)} behind Graph's (its Date header "
                        f"{doc.get('graph_date')}): versions reach the lake that much late; fix the host's time sync")
    if problems:
        return LAGGING, "; ".join(problems)
    problem = doc.get("graph_date_problem")
    unchecked = f"; clock unchecked against Graph's ({problem})" if problem else ""
    return OK, f"watermark {_behind_or_ahead(lag)}, {doc.get('sent', 0)} versions sent by the last run{unchecked}"


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


def _normalizer_lag(records: dict[tuple[str, str], dict[str, Any]], now: datetime,
                    event_hub: bool) -> Finding | None:
    """LAGGING when the newest normalize record (any partition: a partition that was sent nothing keeps an old
    one) is older than the pulls' last send by more than NORMALIZER_LAG_WAITS trigger waits: the trigger stopped,
    or reads another consumer group. The last send is each pull record's `last_sent`, the last run that sent
    something, however many runs sent nothing since."""
    pulls = (_last_send(key, doc) for (component, key), doc in records.items() if component == "pull")
    sends = [send for send in pulls if send is not None]
    landings = [datetime.fromisoformat(doc["updated"]) for (component, _), doc in records.items()
                if component == "normalize" and doc.get("updated")]
    if not sends or not (landings or event_hub):
        return None
    sent_at, source, sent = max(sends)
    grace = timedelta(seconds=TRIGGER_MAX_WAIT_SECONDS * NORMALIZER_LAG_WAITS)
    landed_at = max(landings, default=None)
    if landed_at is None and now - sent_at <= grace:  # the first batches may still be on their way
        return None
    if landed_at is not None and landed_at >= sent_at - grace:
        return None
    since = f"since {landed_at.isoformat()}" if landed_at else "anything yet"
    return Finding("normalize", "consumer", LAGGING,
                   f"the normalizer has not landed {since}, while pull/{source} sent {sent} versions by "
                   f"{sent_at.isoformat()}: its Event Hub trigger is stopped or behind, or reads another consumer "
                   "group")


def _logs_silence(records: dict[tuple[str, str], dict[str, Any]], now: datetime,
                  max_silence_seconds: float | None) -> Finding | None:
    """LAGGING when streamed logs stopped: the newest landing of any normalize_logs partition (a partition Event
    Hubs sent nothing keeps an old one) is older than the limit. Nothing pushes logs on a schedule, so their
    stopping (a diagnostic setting removed, a hub renamed) shows nowhere else. No normalize_logs record: the
    deployment never streamed logs, nothing to judge."""
    if max_silence_seconds is None:
        return None
    landings = [landed for (component, _), doc in records.items()
                if component == "normalize_logs" and (landed := _last_landed(doc)) is not None]
    if not landings:
        return None
    landed_at = max(landings)
    silence = (now - landed_at).total_seconds()
    if silence <= max_silence_seconds:
        return None
    return Finding("normalize_logs", "arrival", LAGGING,
                   f"no Azure Monitor log record has landed since {landed_at.isoformat()}, {_duration(silence)} ago "
                   f"(LOGS_MAX_SILENCE_SECONDS: {_duration(max_silence_seconds)}): a diagnostic setting was removed "
                   "or points elsewhere, the logs hub's name changed, or normalize_logs stopped; if the deployment "
                   "stopped streaming logs on purpose, delete state/health/normalize_logs/")


def _last_landed(doc: dict[str, Any]) -> datetime | None:
    """When the partition last landed records; a record from before `last_landed` knows only its own batch."""
    if doc.get("last_landed"):
        return datetime.fromisoformat(doc["last_landed"])
    if doc.get("updated") and doc.get("result") == "ok" and int(doc.get("rows") or 0) > 0:
        return datetime.fromisoformat(doc["updated"])
    return None


def _last_send(key: str, doc: dict[str, Any]) -> tuple[datetime, str, int] | None:
    """When the source last sent versions, and how many; a record from before `last_sent` knows only its own run."""
    if doc.get("last_sent"):
        return datetime.fromisoformat(doc["last_sent"]), key, int(doc.get("last_sent_versions") or 0)
    if doc.get("updated") and int(doc.get("sent") or 0) > 0:
        return datetime.fromisoformat(doc["updated"]), key, int(doc["sent"])
    return None


def _reconcile(doc: dict[str, Any]) -> tuple[str, str]:
    if doc.get("result") != "ok":
        return _failed(doc, "runs")
    missing, repaired, late, landed, pending, not_landed = (
        int(doc.get(k) or 0) for k in ("missing", "repaired", "late_found", "landed", "pending", "not_landed"))
    if not_landed:
        return FAILING, (f"{not_landed} versions sent but not landed since {doc.get('not_landed_since')}, hub "
                         f"{doc.get('eventhub')} consumer group {doc.get('consumer_group')}: the normalizer is not "
                         "consuming them (its Event Hub trigger stopped, or the consumer group is wrong)")
    # A record from before `unsent` was written counted re-sent as repaired.
    unsent = int(doc.get("unsent") or 0) if "unsent" in doc else missing - repaired
    if unsent > 0:
        return FAILING, f"{unsent} versions Graph holds are missing from the lake and were not re-sent"
    if pending:
        return LAGGING, (f"{pending} versions re-sent to the lake have not landed yet; the next run looks for them "
                         "and fails if they still have not")
    if late:
        return LAGGING, (f"{late} versions showed up in Graph later than the pull's overlap (re-sent, and landed); "
                         "raise PULL_OVERLAP_SECONDS if this keeps happening")
    if "window" in doc and not doc["window"]:
        # The pull's watermark is older than the look-back: nothing was compared, which is no proof of anything.
        return LAGGING, "nothing compared: the pull's watermark is older than RECONCILE_LOOKBACK_HOURS"
    if "landed" in doc:
        return OK, f"lake complete against Graph ({landed} re-sent versions landed)"
    return OK, f"lake complete against Graph ({repaired} repaired)"


def _compact(doc: dict[str, Any]) -> tuple[str, str]:
    if doc.get("result") == "failed" and doc.get("error"):  # the run raised: it did not get to count anything
        return _failed(doc, "runs")
    indexes = (f"indexes: {doc.get('indexes_written', 0)} written with their partitions, "
               f"{doc.get('indexes_repaired', 0)} found missing or stale and written again")
    if doc.get("partitions_failed"):
        return FAILING, (f"{doc['partitions_failed']} partitions not compacted, first: "
                         f"{(doc.get('errors') or ['?'])[0]}; {indexes}")
    if doc.get("stopped_early"):
        return LAGGING, (f"the last run stopped at COMPACT_MAX_RUN_SECONDS with closed partitions left to compact or "
                         f"index (the next run continues; until then search reads their days whole); {indexes}")
    return OK, f"last run: {doc.get('partitions_compacted', 0)} partitions compacted; {indexes}"


def _detections(doc: dict[str, Any]) -> tuple[str, str]:
    if doc.get("config_errors"):
        more = doc["config_errors"] - 1
        return FAILING, f"{(doc.get('errors') or ['?'])[0]}" + (f" (and {more} more)" if more > 0 else "")
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
