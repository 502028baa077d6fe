"""Panther's grouping of matches into alerts, the one rule the live alerts and the backtest share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detections.dedup import alert_periods

T0 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(("minutes_after", "period", "threshold", "alerts"), [
    ([0, 1, 2], 60, 1, 1),  # one period, sent at its first match
    ([0, 60, 120], 60, 1, 3),  # a match at the period's end opens the next one
    ([0, 59, 119], 60, 2, 1),  # the third match opens a new period, which never reaches its threshold
    ([0, 10, 20, 30], 60, 3, 1),  # sent once per period, however many matches follow
    ([30, 0, 10], 60, 3, 1),  # counted in time order, not arrival order
    ([0, 10, 70, 80], 60, 2, 2),
    ([], 60, 1, 0),
])
def test_matches_group_into_alerts_by_period_and_threshold(minutes_after, period, threshold, alerts) -> None:
    moments = [T0 + timedelta(minutes=m) for m in minutes_after]
    assert len(alert_periods(moments, period, threshold)) == alerts


def test_each_alert_counts_the_matches_of_its_period_in_time_order() -> None:
    # Indices into the moments given: the 70- and 80-minute matches open and fill the second period.
    moments = [T0 + timedelta(minutes=m) for m in (80, 0, 10, 70, 200)]
    made = alert_periods(moments, 60, 2)
    assert [(period.opened, members) for period, members in made] == [(T0, [1, 2]), (moments[3], [3, 0])]
