"""Panther's grouping of a rule's matches into alerts: the dedup period and the threshold, written once for the
live alerts (detections/alerts.py, periods in processing time, kept in the state store) and the backtest
(detections/backtest.py, periods in event time, in memory).

One alert per rule and dedup string per DedupPeriodMinutes: the first match opens the period (and fixes the
alert's id), later matches within it count into the same alert, and the alert is sent once Threshold matches have
accumulated, once per period. A new period starts with the first match after it ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class DedupPeriod:
    """One alert's period: when its first match came, the rule's period and threshold then, what it counted."""

    opened: datetime
    minutes: int
    threshold: int
    count: int = 0
    sent: bool = False

    def count_in(self, matches: int) -> bool:
        """Counts `matches` more into the period; whether the alert is to be sent now (the threshold reached, the
        first time in this period)."""
        crossed = not self.sent and self.count + matches >= self.threshold
        self.count += matches
        self.sent = self.sent or crossed
        return crossed


def period_at(current: DedupPeriod | None, moment: datetime, minutes: int, threshold: int) -> DedupPeriod:
    """The period a match at `moment` counts into: `current` while it lasts, else a new one this match opens,
    with the rule's period and threshold as they are now."""
    if current is not None and moment < current.opened + timedelta(minutes=current.minutes):
        return current
    return DedupPeriod(moment, minutes, threshold)


def alert_periods(moments: Iterable[datetime], minutes: int, threshold: int) -> list[tuple[DedupPeriod, list[int]]]:
    """The periods that made an alert, each with the indices (into `moments`) of the matches it counted, in time
    order."""
    periods: list[tuple[DedupPeriod, list[int]]] = []
    period = None
    for index, moment in sorted(enumerate(moments), key=lambda pair: pair[1]):
        found = period_at(period, moment, minutes, threshold)
        if found is not period:
            periods.append((found, []))
        period = found
        period.count_in(1)
        periods[-1][1].append(index)
    return [(p, members) for p, members in periods if p.sent]
