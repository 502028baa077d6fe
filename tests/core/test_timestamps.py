from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.core.timestamps import parse_graph_time

CASES = [
    # Graph's own form: seven fractional digits and a Z; the seventh digit is dropped, never rounded up.
    ("2024-05-01T10:02:27.7211305Z", datetime(2024, 5, 1, 10, 2, 27, 721130, tzinfo=UTC)),
    ("2024-05-01T10:02:27.9999999Z", datetime(2024, 5, 1, 10, 2, 27, 999999, tzinfo=UTC)),
    ("2024-05-01T10:02:27.11Z", datetime(2024, 5, 1, 10, 2, 27, 110000, tzinfo=UTC)),
    ("2024-05-01T10:02:27Z", datetime(2024, 5, 1, 10, 2, 27, tzinfo=UTC)),
    ("2024-05-01T10:02:27.12345678901Z", datetime(2024, 5, 1, 10, 2, 27, 123456, tzinfo=UTC)),
    ("2024-05-01T10:02:27+00:00", datetime(2024, 5, 1, 10, 2, 27, tzinfo=UTC)),
    ("2024-05-01T12:02:27.5+02:00", datetime(2024, 5, 1, 10, 2, 27, 500000, tzinfo=UTC)),
    # No zone: Graph's times are UTC.
    ("2024-05-01T10:02:27.7211305", datetime(2024, 5, 1, 10, 2, 27, 721130, tzinfo=UTC)),
    (" 2024-05-01T10:02:27Z\n", datetime(2024, 5, 1, 10, 2, 27, tzinfo=UTC)),
    ("", None),
    ("not a time", None),
    ("2024-13-01T10:02:27Z", None),
    ("2024-05-01T10:02:27.7211305Zjunk", None),
    ("{{createdDateTime}}", None),
    (None, None),
    (1714557747, None),
    (datetime(2024, 5, 1, 10, 2, 27, tzinfo=UTC), None),  # not text: only Graph's JSON strings are read
    (["2024-05-01T10:02:27Z"], None),
]


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[repr(raw) for raw, _ in CASES])
def test_graph_times_parse_to_utc_or_none(raw: object, expected: datetime | None) -> None:
    parsed = parse_graph_time(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset().total_seconds() == 0
