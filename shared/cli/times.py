"""Times as the commands take them: ISO 8601, or relative to now (7d, 12h, 30m ago); and the pull's schedule."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click


def parse_time(text: str, option: str) -> datetime:
    """The UTC moment a typed time names. Converted here, once: everything after compares and formats UTC (a time
    with an offset once reached Graph as its wall time with a Z, and the watermark moved past hours nobody read)."""
    relative = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if relative:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[relative.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: float(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither ISO 8601 nor like 7d / 12h / 30m", param_hint=option)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_to_next(schedule: str) -> float:
    """Until the next occurrence of an NCRONTAB schedule (seconds first, as the Functions host reads it)."""
    from croniter import croniter

    now = datetime.now(UTC)
    return max(0.0, (croniter(schedule, now, second_at_beginning=True).get_next(datetime) - now).total_seconds())
