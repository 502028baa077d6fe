"""Graph timestamps as ticks: integer 100 ns units since the Unix epoch.

Graph (a .NET service) keeps DateTimeOffset at 100 ns precision and prints it with trailing zeros of the fraction
trimmed: "…:27.7211305Z", "…:50.11Z", "…:50Z". Holding ticks as ints keeps $filter comparisons exact at that
precision, and printing a value always gives back the value that filters compare against.
"""

from __future__ import annotations

import re
from functools import lru_cache
from datetime import datetime, timedelta, timezone

TICKS_PER_SECOND = 10_000_000
TICKS_PER_MICROSECOND = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# OData DateTimeOffset literal; Edm allows up to 12 fractional digits, Graph keeps 7.
_LITERAL = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,12}))?)?(Z|[+-]\d{2}:\d{2})\Z")


def from_datetime(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("naive datetime: Graph times are UTC, pass an aware datetime")
    return (value - _EPOCH) // timedelta(microseconds=1) * TICKS_PER_MICROSECOND


def to_datetime(ticks: int) -> datetime:
    """Truncates to microseconds, the precision of datetime."""
    return _EPOCH + timedelta(microseconds=ticks // TICKS_PER_MICROSECOND)


def now_ticks() -> int:
    return from_datetime(datetime.now(timezone.utc))


@lru_cache(maxsize=4096)
def _date_text(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


def format_ticks(ticks: int) -> str:
    # Hot path (a dozen times per alert served): the date part is cached per day instead of strftime each time.
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    day, second_of_day = divmod(seconds, 86_400)
    hour, rest = divmod(second_of_day, 3600)
    text = f"{_date_text(day)}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}"
    if fraction:
        return f"{text}.{fraction:07d}".rstrip("0") + "Z"
    return text + "Z"


def parse_literal(text: str) -> int:
    """An unquoted OData DateTimeOffset literal as in `lastUpdateDateTime ge 2026-11-20T00:00:00Z`."""
    match = _LITERAL.match(text)
    if not match:
        raise ValueError(f"not a DateTimeOffset literal: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    base = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=timezone.utc)
    ticks = from_datetime(base) + int((fraction or "").ljust(7, "0")[:7])
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        ticks -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60) * TICKS_PER_SECOND
    return ticks
