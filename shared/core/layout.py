"""The lake's layout, defined once: `<table>/year=YYYY/month=MM/day=DD/<file>.parquet`, keyed by the UTC day of
p_event_time, and beside the tables each closed partition's indicator index,
`_index/<table>/year=YYYY/month=MM/day=DD/indicators-<digest of the partition's file names>-<digest of its footer>.parquet`:
outside every table's folder, so a reader that globs a table's partitions never meets it, and in the lake's
container, so the lifecycle policy that expires the lake's days expires their indexes too. The writer (shared.land.lake_writer),
compaction, the index and the readers (shared.read.lake_reader) all name and parse files here. Standard library
only, so a reader that lists a lake imports nothing heavy for it."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_PARTITION_FILE_RE = re.compile(r"^(?P<table>[A-Za-z0-9_][A-Za-z0-9_-]*)/year=(?P<year>\d{4})/month=(?P<month>\d{2})/"
                                r"day=(?P<day>\d{2})/(?P<file>[^/]+\.parquet)$")
INDEX_FOLDER = "_index"
_INDEX_FILE_RE = re.compile(rf"^{INDEX_FOLDER}/(?P<table>[A-Za-z0-9_][A-Za-z0-9_-]*)/year=(?P<year>\d{{4}})/"
                            r"month=(?P<month>\d{2})/day=(?P<day>\d{2})/indicators-(?P<file>[0-9a-f]{20})"
                            r"(?:-(?P<footer>[0-9a-f]{20}))?\.parquet$")
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class PartitionFile:
    table: str
    day: dt.date
    file: str  # the name inside the partition folder


@dataclass(frozen=True)
class IndexFile:
    table: str
    day: dt.date
    files: str  # files_digest of the data files it was built from
    footer: str  # footer_digest of the index itself; "" in the names of the first format, which carried none


def check_table_name(name: str) -> str:
    if not TABLE_NAME_RE.match(name):
        raise ValueError(f"invalid table name {name!r}: use letters, digits, '_' and '-'")
    return name


def partition_path(table: str, day: dt.date) -> str:
    return f"{table}/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"


def parse_partition_file(name: str) -> PartitionFile | None:
    """The table, day and file of a name relative to the lake root; None for anything outside the layout."""
    return _parsed(_PARTITION_FILE_RE.match(name))


def files_digest(names: list[str]) -> str:
    """20 hex digits naming a set of a partition's files (their names inside the partition folder, in any order):
    an index's name carries the digest of the files it was built from, so a listing alone shows it stale."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:20]


def footer_digest(tail: bytes) -> str | None:
    """20 hex digits of a parquet file's footer (its metadata, with the statistics and key-value metadata a reader
    trusts, then its length and magic), given the file's last bytes (at least the footer); None when they do not end
    in a whole footer. An index's name carries it, so a reader that reads the footer can tell it is the one written."""
    if len(tail) < 8 or tail[-4:] != _PARQUET_MAGIC:
        return None
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > len(tail):
        return None
    return hashlib.sha256(tail[len(tail) - 8 - length:]).hexdigest()[:20]


def index_name(table: str, day: dt.date, file_names: list[str], footer: str) -> str:
    """The name of the indicator index of these files of the partition (table, day), whose footer digest is
    `footer`."""
    return f"{INDEX_FOLDER}/{partition_path(table, day)}/indicators-{files_digest(file_names)}-{footer}.parquet"


def index_folder(table: str, day: dt.date) -> str:
    return f"{INDEX_FOLDER}/{partition_path(table, day)}/"


def parse_index_file(name: str) -> IndexFile | None:
    """The table, day and digests of an indicator index's name relative to the lake root; None for any other name."""
    match = _INDEX_FILE_RE.match(name)
    parsed = _parsed(match)
    return None if parsed is None else IndexFile(parsed.table, parsed.day, parsed.file, match["footer"] or "")


def _parsed(match: re.Match | None) -> PartitionFile | None:
    if match is None:
        return None
    try:
        day = dt.date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:  # year=2026/month=13: not a partition anyone writes
        return None
    return PartitionFile(match["table"], day, match["file"])
