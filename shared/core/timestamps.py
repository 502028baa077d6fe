"""Graph's timestamps read one way everywhere: the normalizer, the pull, the audit and the file loader must agree on
what is a time, or one of them refuses (or files in another day) what another accepted.

Graph writes ISO 8601 in UTC with up to seven fractional digits and a 'Z' ("2024-05-01T10:02:27.7211305Z"), and at
times fewer digits, an offset, or no zone. Our own state documents, written with isoformat, are not Graph's and
are read back with datetime.fromisoformat.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_graph_time(raw: object) -> datetime | None:
    """An aware UTC datetime from Graph's text; None for anything that is not a string holding a time.

    Lenient where Graph's writers vary: surrounding whitespace, any number of fractional digits (beyond
    microseconds they are dropped, not rounded, so a time never moves into the next second), 'Z' or an offset,
    and no zone at all read as UTC (Graph's zone).
    """
    if type(raw) is not str:
        return None
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        if "." not in text:
            return None
        # Odd fractions some Pythons refuse ("...27.12345678901Z"): keep the microseconds, drop the rest.
        head, _, fraction = text.partition(".")
        digits = len(fraction) - len(fraction.lstrip("0123456789"))
        try:
            parsed = datetime.fromisoformat(f"{head}.{fraction[:min(digits, 6)] or '0'}{fraction[digits:]}")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
