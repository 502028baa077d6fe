"""The lake's layout, defined once: `<table>/year=YYYY/month=MM/day=DD/<file>.parquet`, keyed by the UTC day of
p_event_time. The writer (shared.land.lake_writer), compaction and the readers (shared.read.lake_reader) all name and parse files
here. Standard library only, so a reader that lists a lake imports nothing heavy for it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_PARTITION_FILE_RE = re.compile(r"^(?P<table>[A-Za-z0-9_][A-Za-z0-9_-]*)/year=(?P<year>\d{4})/month=(?P<month>\d{2})/"
                                r"day=(?P<day>\d{2})/(?P<file>[^/]+\.parquet)$")


@dataclass(frozen=True)
class PartitionFile:
    table: str
    day: dt.date
    file: str  # the name inside the partition folder


def check_table_name(name: str) -> str:
    if not TABLE_NAME_RE.match(name):
        raise ValueError(f"invalid table name {name!r}: use letters, digits, '_' and '-'")
    return name


def partition_path(table: str, day: dt.date) -> str:
    return f"{table}/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"


def parse_partition_file(name: str) -> PartitionFile | None:
    """The table, day and file of a name relative to the lake root; None for anything outside the layout."""
    match = _PARTITION_FILE_RE.match(name)
    if match is None:
        return None
    try:
        day = dt.date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:  # year=2026/month=13: not a partition anyone writes
        return None
    return PartitionFile(match["table"], day, match["file"])
