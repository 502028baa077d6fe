from datetime import UTC, datetime, timedelta

import orjson

from shared.core.settings import load_settings
from shared.pull.window import Window, plan_window, slices

NOW = datetime(2026, 11, 27, 12, 0, 30, 123456, tzinfo=UTC)
SETTINGS = load_settings({"PULL_OVERLAP_SECONDS": "600", "PULL_DELAY_SECONDS": "120", "PULL_LOOKBACK_DAYS": "7"})


def test_first_run_looks_back_and_stops_short_of_now():
    window = plan_window(None, NOW, SETTINGS)
    assert window.end == datetime(2026, 11, 27, 11, 58, 30, tzinfo=UTC)
    assert window.start == window.end - timedelta(days=7)


def test_later_runs_start_one_overlap_before_the_watermark():
    mark = datetime(2026, 11, 27, 11, 50, tzinfo=UTC)
    window = plan_window(mark, NOW, SETTINGS)
    assert window.start == datetime(2026, 11, 27, 11, 40, tzinfo=UTC)


def test_nothing_to_read_when_the_watermark_is_ahead_of_the_delay():
    assert plan_window(NOW + timedelta(minutes=20), NOW, SETTINGS) is None


def test_since_overrides_the_watermark_for_backfills():
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert plan_window(NOW, NOW, SETTINGS, since=since).start == since


def test_slices_cover_the_window_without_gaps_or_overlaps():
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, 5, 30, tzinfo=UTC))
    parts = slices(window, 360)
    assert parts[0].start == window.start and parts[-1].end == window.end
    assert all(a.end == b.start for a, b in zip(parts, parts[1:]))
    assert [p.end - p.start for p in parts[:-1]] == [timedelta(hours=6)] * 4
    assert parts[-1].end - parts[-1].start == timedelta(hours=5, minutes=30)


def test_watermark_keeps_recent_pairs_whatever_their_timestamp_looks_like(tmp_path):
    from shared.core.storage import open_store
    from shared.pull.watermark import WatermarkStore

    marks = WatermarkStore(open_store(str(tmp_path)), "source")
    position = datetime(2026, 11, 27, 12, tzinfo=UTC)
    sent = {("zoned", "s", "2026-11-27T11:59:59.1234567Z"), ("zoneless", "s", "2026-11-27T11:59:58.12"),
            ("old", "s", "2026-11-27T11:00:00Z"), ("garbage", "s", "27/11/2026 11:59")}
    mark = marks.advance(marks.load(), position, sent, timedelta(minutes=10))
    assert mark.recent == {("zoned", "s", "2026-11-27T11:59:59.1234567Z"), ("zoneless", "s", "2026-11-27T11:59:58.12")}
    assert marks.load().recent == mark.recent


def test_a_watermark_of_id_and_time_pairs_still_loads_and_its_pairs_match_any_service_source(tmp_path):
    """Watermarks written before serviceSource was part of an alert's identity keep (id, lastUpdateDateTime)."""
    from shared.core.storage import open_store
    from shared.pull.watermark import WatermarkStore

    store = open_store(str(tmp_path))
    marks = WatermarkStore(store, "source")
    store.write(marks.name, orjson.dumps({"position": "2026-11-27T12:00:00+00:00",
                                          "recent": [["a", "2026-11-27T11:59:00Z"], ["b", "2026-11-27T11:00:00Z"]]}))
    mark = marks.load()
    assert mark.was_sent(("a", "microsoftDefenderForEndpoint", "2026-11-27T11:59:00Z"))
    assert not mark.was_sent(("a", "microsoftDefenderForEndpoint", "2026-11-27T11:59:01Z"))
    position = datetime(2026, 11, 27, 12, 1, tzinfo=UTC)
    mark = marks.advance(mark, position, {("c", "s", "2026-11-27T12:00:30Z")}, timedelta(minutes=10))
    reloaded = marks.load()
    assert reloaded.legacy == {("a", "2026-11-27T11:59:00Z")}  # b has left the overlap
    assert reloaded.recent == {("c", "s", "2026-11-27T12:00:30Z")}
