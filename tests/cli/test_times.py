"""Times a person types are converted to UTC once, where the command reads them: an offset is kept as the moment
it names, never sent to Graph or compared as wall time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from shared.cli import main
from shared.cli.times import parse_time


@pytest.mark.parametrize("text, expected", [
    ("2026-12-07T11:37:20+10:00", datetime(2026, 12, 7, 1, 37, 20, tzinfo=UTC)),
    ("2026-12-06T20:00:00-05:30", datetime(2026, 12, 7, 1, 30, tzinfo=UTC)),
    ("2026-12-07T01:37:20Z", datetime(2026, 12, 7, 1, 37, 20, tzinfo=UTC)),
    ("2026-12-07T01:37:20", datetime(2026, 12, 7, 1, 37, 20, tzinfo=UTC)),  # no zone: UTC, as Graph's times
])
def test_a_typed_time_is_the_utc_moment_it_names(text: str, expected: datetime) -> None:
    moment = parse_time(text, "--since")
    assert moment == expected and moment.utcoffset() == timedelta(0) and moment.tzinfo is UTC


def test_pull_since_with_an_offset_reads_from_that_moment(make_pipeline) -> None:
    # Alerts over the last day; a backfill from 12 hours ago, written in UTC+10, must land every alert updated since.
    pipe = make_pipeline(alerts=200, days=1)
    since = (pipe.tenant.now - timedelta(hours=12)).astimezone(timezone(timedelta(hours=10)))
    result = CliRunner().invoke(main, ["pull", "--once", "--since", since.isoformat()], env=pipe.env)
    assert result.exit_code == 0, result.output
    latest = dict(pipe.current_pairs())
    expected = {alert_id for alert_id, stamp in latest.items()
                if graph_time(stamp) >= since}
    assert 0 < len(expected) < len(latest)  # the window cuts the tenant, so reading too little shows
    assert expected <= set(landed_ids(pipe))


def graph_time(stamp: str) -> datetime:
    """Graph's `...:07.1234567Z` (up to 7 fractional digits) as a UTC datetime."""
    head, _, fraction = stamp.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]}+00:00")


def landed_ids(pipe) -> list[str]:
    from normalizers.names import TABLE
    from shared.core.storage import open_store
    from shared.land.lake_writer import read_table

    return read_table(open_store(pipe.env["LAKE_URL"]), TABLE).column("id").to_pylist()
