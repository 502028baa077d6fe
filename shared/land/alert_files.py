"""Alert files as users have them, read into alerts: what `graphlake normalize` (and anything else that takes alert
files) accepts.

Accepted: a JSON object (one alert, or a Graph response page `{"value": [...]}`), a JSON array of alerts, JSON lines
of alerts or of pages, pretty-printed or not; UTF-8 with or without a byte-order mark, or UTF-16 with one (what
Windows PowerShell 5.1 writes); gzip-compressed, told by its magic bytes, not its name. Empty pages are fine.

Azure Monitor's records (Entra sign-in, audit and risk logs, the Activity log) are read from the same forms: an Event
Hub body `{"records": [...]}`, the JSON lines archive-to-storage writes (`PT1H.json`), an array, one record; a record
is an object with a `category` and a `time` and no `id`, and becomes a Record of the `logs` family, routed to its table by the
normalizer.

Anything else becomes a `Record` with the reason it was refused, saying what it looked like (a wrapper object, a
documentation template, a list of pages, a PowerShell object, ...), so that the caller quarantines it instead of
landing it or dropping it. An alert's JSON is passed on as the file holds it (compacted when it was part of a
larger document), so its values keep their exact text.
"""

from __future__ import annotations

import gzip
import re
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from shared.core.errors import GraphlakeError
from shared.core.timestamps import parse_graph_time

if TYPE_CHECKING:
    from shared.core.storage import Store
    from shared.land.detect import Detector

_GZIP_MAGIC = b"\x1f\x8b"
# Longest first: the UTF-32 marks begin with the UTF-16 ones.
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\xef\xbb\xbf", "utf-8"),
         (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
# Placeholders of the Graph documentation's JSON representations: "String (identifier)", "String (timestamp)", ...
_PLACEHOLDER = re.compile(r"(String|Int32|Int64|Boolean|Guid|DateTimeOffset|Edm\.\w+)( \(.*\))?")
_TIMESTAMPS = ("createdDateTime", "lastUpdateDateTime")
# Properties of an alert as the Microsoft Graph PowerShell SDK names them (ConvertTo-Json of its objects).
_POWERSHELL_KEYS = {"Id", "CreatedDateTime", "LastUpdateDateTime", "AdditionalProperties"}


class AlertFileError(GraphlakeError):
    """A source cannot be read at all (missing, a folder, stdin closed, not decodable)."""


@dataclass(frozen=True)
class Record:
    """One alert, or one refused document, and where it starts in its file."""

    file: str
    line: int
    body: bytes  # the alert's JSON; for a refused document, its text
    refused: str | None = None  # why it is not an alert
    family: str = "alerts"  # or "logs": an Azure Monitor record (shared.land.normalize.FAMILIES)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


class _Head(msgspec.Struct):
    """The few properties that tell an alert from the other things a file may hold; the rest is skipped."""

    id: Any = None
    value: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # a page's alerts, left undecoded
    createdDateTime: Any = None  # noqa: N815 - Graph's names
    lastUpdateDateTime: Any = None  # noqa: N815
    records: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # an Azure Monitor body's records, left undecoded
    category: Any = None  # an Azure Monitor record's
    time: Any = None  # an Azure Monitor record's


_decode_head = msgspec.json.Decoder(_Head).decode
_decode_raw = msgspec.json.Decoder(msgspec.Raw).decode
_decode_object = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_array = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder().decode


def read_source(name: str) -> bytes:
    """The bytes of a file, or of stdin for "-"; AlertFileError in one line if it cannot be read."""
    if name == "-":
        stream = sys.stdin
        if stream is None or stream.closed:
            raise AlertFileError("cannot read stdin: it is closed (give a file, or pipe alerts into -)")
        try:
            return stream.buffer.read()
        except (OSError, ValueError) as exc:
            raise AlertFileError(f"cannot read stdin: {exc}") from None
    path = Path(name)
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise AlertFileError(f"{name} is a folder; give the alert files in it") from None
    except FileNotFoundError:
        raise AlertFileError(f"{name}: no such file") from None
    except OSError as exc:
        raise AlertFileError(f"cannot read {name}: {exc.strerror or exc}") from None


def decoded(data: bytes, name: str) -> bytes:
    """UTF-8 text without a byte-order mark, from gzip (any number of members) and UTF-16/32 with a mark."""
    if data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise AlertFileError(f"{name} starts like gzip but does not decompress: {exc}") from None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            if codec == "utf-8":
                return data[len(bom):]
            try:
                return data[len(bom):].decode(codec).encode("utf-8")
            except UnicodeDecodeError as exc:
                raise AlertFileError(f"{name} has a {codec} byte-order mark but is not {codec}: {exc}") from None
    return data


def records(data: bytes, name: str) -> Iterator[Record]:
    """Every alert and every refused document of one file's bytes (see the module docstring), in file order."""
    text = decoded(data, name)
    stripped = text.strip()
    if not stripped:
        return
    try:
        _decode_raw(stripped)
    except msgspec.DecodeError as exc:
        error = exc
    else:  # One JSON document: an alert, a page, an array, pretty-printed or on one line.
        yield from _document(text, stripped, text.find(stripped[:1]), name)
        return
    lines = text.splitlines()
    if _looks_like_json_lines(lines):
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield from _document(text, line.strip(), None, name, number)
        return
    # Neither one document nor JSON lines: most likely a pretty-printed document that is cut short or broken.
    # One record for it, not one per line.
    several = b"\n" in stripped
    yield Record(name, _line_of(text, text.find(stripped[:1])), stripped,
                 f"not JSON: {error}" + (" (a document over several lines that does not parse)" if several else ""))


def _looks_like_json_lines(lines: list[bytes]) -> bool:
    """Whether the lines (of the first thousand) are documents of their own: most of them are JSON objects or
    arrays by themselves, or one is an alert or a page by itself. A pretty-printed document's lines hardly ever are
    either, while a JSON-lines file keeps its good lines whatever bad lines sit beside them."""
    sample = [line.strip() for line in lines[:1000] if line.strip()]
    heads = [_head_of(line) for line in sample if line[:1] in (b"{", b"[")]
    whole = sum(1 for head in heads if head is not None)
    return whole * 2 > len(sample) or any(isinstance(head, _Head) and _is_alert_or_page(head) for head in heads)


def _head_of(line: bytes) -> _Head | bool | None:
    """The line's head when it is an object by itself, True for an array by itself, None when it does not parse."""
    try:
        return _decode_head(line) if line[:1] == b"{" else bool(_decode_array(line)) or True
    except msgspec.DecodeError:
        return None


def _is_alert_or_page(head: _Head) -> bool:
    if (head.value is not msgspec.UNSET or head.records is not msgspec.UNSET or _is_log_record(head)) \
            and head.id is None:
        return True
    return head.id is not None and (head.createdDateTime is not None or head.lastUpdateDateTime is not None)


def _line_of(text: bytes, offset: int) -> int:
    return text.count(b"\n", 0, offset) + 1


class _Locator:
    """The line each part of a document starts on, for parts asked for in file order: each search and each count
    of newlines starts where the last ended, so a document of many alerts is scanned once. A JSON line has no
    offset: all its parts are on its line."""

    def __init__(self, text: bytes, offset: int | None, line: int) -> None:
        self.text, self.offset, self.line = text, offset, line

    def line_of(self, part: bytes) -> int:
        if self.offset is None:
            return self.line
        found = self.text.find(part, self.offset)
        if found < 0:  # not an exact slice after all: the last known line is the best guess
            return self.line
        self.line += self.text.count(b"\n", self.offset, found)
        start_line = self.line
        self.line += part.count(b"\n")
        self.offset = found + len(part)
        return start_line


def _document(text: bytes, doc: bytes, offset: int | None, name: str, line: int = 0) -> Iterator[Record]:
    """The records of one JSON document, `doc`: the whole file (starting at `offset` in `text`), so that the parts
    of a pretty-printed document are located by their own line, or a JSON line (number `line`)."""
    start_line = line if offset is None else _line_of(text, offset)
    where = _Locator(text, offset, start_line)
    try:
        first = doc[:1]
        if first == b"{":
            head = _decode_head(doc)
            if head.value is not msgspec.UNSET and head.id is None:
                yield from _page(doc, head, where, name, start_line)
            elif head.records is not msgspec.UNSET and head.id is None and head.category is None:
                yield from _log_body(doc, head, where, name, start_line)
            else:
                yield _alert(doc, name, start_line, head=head)
        elif first == b"[":
            yield from _array(doc, where, name, start_line)
        else:
            kind = type(_decode_any(doc)).__name__
            yield Record(name, start_line, doc, f"{_a(_JSON_KINDS.get(kind, kind))}, not an alert")
    except msgspec.DecodeError as exc:
        yield Record(name, start_line, doc, f"not JSON: {exc}")


_JSON_KINDS = {"str": "JSON string", "int": "JSON number", "float": "JSON number", "bool": "JSON true or false",
               "NoneType": "JSON null", "list": "JSON array", "dict": "JSON object"}


def _a(noun: str) -> str:
    return f"a {noun}"


def _page(doc: bytes, head: _Head, where: _Locator, name: str, line: int) -> Iterator[Record]:
    if bytes(head.value)[:1] != b"[":
        kind = _JSON_KINDS.get(type(_decode_any(bytes(head.value))).__name__, "value")
        yield Record(name, line, doc, f"a wrapper object: its \"value\" holds {_a(kind)}, not a list of alerts "
                                      "(a Graph page is {\"value\": [alert, ...]})")
        return
    for raw in _decode_array(bytes(head.value)):
        part = bytes(raw)
        part_line = where.line_of(part)
        if part[:1] == b"{":
            yield _alert(part, name, part_line, compact=True)
        else:
            kind = _JSON_KINDS.get(type(_decode_any(part)).__name__, "value")
            yield Record(name, part_line, part, f"{_a(kind)} in a Graph page's value, not an alert")


def _log_body(doc: bytes, head: _Head, where: _Locator, name: str, line: int) -> Iterator[Record]:
    """The records of an Azure Monitor Event Hub body, `{"records": [...]}`, each located on its own line."""
    if bytes(head.records)[:1] != b"[":
        kind = _JSON_KINDS.get(type(_decode_any(bytes(head.records))).__name__, "value")
        yield Record(name, line, doc, f"an Azure Monitor body whose \"records\" holds {_a(kind)}, not a list of "
                                      "records", "logs")
        return
    for raw in _decode_array(bytes(head.records)):
        part = bytes(raw)
        part_line = where.line_of(part)
        # Not judged here: the normalizer quarantines what is not a record it lands, with the reason.
        yield Record(name, part_line, msgspec.json.format(part, indent=-1), None, "logs")


def _is_log_record(head: _Head) -> bool:
    # Every Azure Monitor record has a time and a category; an alert that lost its id has neither `time` nor an id,
    # and is refused as an alert.
    return head.id is None and isinstance(head.category, str) and head.time is not None


def _array(doc: bytes, where: _Locator, name: str, line: int) -> Iterator[Record]:
    parts = [bytes(raw) for raw in _decode_array(doc)]
    heads = [_decode_head(part) if part[:1] == b"{" else _decode_any(part) for part in parts]
    if not all(isinstance(h, _Head) for h in heads):
        kinds = sorted({_JSON_KINDS.get(type(h).__name__, "value") if not isinstance(h, _Head) else "JSON object"
                        for h in heads})
        yield Record(name, line, doc, f"a JSON array of {' and '.join(k.removeprefix('JSON ') + 's' for k in kinds)},"
                                      " not of alerts")
        return
    pages = sum(1 for h in heads if h.value is not msgspec.UNSET and h.id is None)
    if pages:
        yield Record(name, line, doc, f"a list of Graph pages ({pages} in one JSON array): give the pages one per "
                                      "line (JSON lines), or each page as its own file")
        return
    for part, head in zip(parts, heads):
        yield _alert(part, name, where.line_of(part), compact=True, head=head)


def _alert(doc: bytes, name: str, line: int, *, compact: bool = False, head: _Head | None = None) -> Record:
    """A Record of the object `doc`: an alert, or refused as what it looks like. The normalizer decides the rest
    (an object without an id, of another @odata.type, ...)."""
    head = head or _decode_head(doc)
    if _is_log_record(head):
        return Record(name, line, msgspec.json.format(doc, indent=-1) if compact else doc, None, "logs")
    refused = _not_an_alert(doc, head)
    if refused is None and compact:
        # Part of a larger document: its indentation is the document's, not the alert's.
        doc = msgspec.json.format(doc, indent=-1)
    return Record(name, line, doc, refused)


def _not_an_alert(doc: bytes, head: _Head) -> str | None:
    if isinstance(head.id, str) and _PLACEHOLDER.fullmatch(head.id):
        return f"a documentation template: id is the placeholder {head.id!r}, not an alert's id"
    if head.id is None:
        keys = list(_decode_object(doc))
        if _POWERSHELL_KEYS & set(keys):
            return ("a PowerShell SDK object (properties named Id, CreatedDateTime, ...): export the alerts' JSON "
                    "instead, e.g. Invoke-MgGraphRequest -OutputType Json")
        wrapped = [k for k in keys if _holds_alerts(doc, k)]
        if wrapped:
            return f"a wrapper object: the alerts sit under {wrapped[0]!r}; give them as an array, a page or lines"
        return None
    for prop in _TIMESTAMPS:
        value = getattr(head, prop)
        if value is not None and parse_graph_time(value) is None:
            what = "a documentation template: " if isinstance(value, str) and _PLACEHOLDER.fullmatch(value) else ""
            return f"{what}{prop} {value!r} is not a time"
    return None


def _holds_alerts(doc: bytes, key: str) -> bool:
    value = _decode_object(doc)[key]
    first = bytes(value)[:1]
    if first == b"{":
        return isinstance(_decode_head(bytes(value)).id, str)
    if first == b"[":
        items = _decode_array(bytes(value))
        return bool(items) and bytes(items[0])[:1] == b"{" and isinstance(_decode_head(bytes(items[0])).id, str)
    return False


@dataclass
class Quarantined:
    location: str
    reason: str
    copy: str  # the quarantine document's name in the state store


@dataclass
class Landing:
    """What loading alert files did: every record read is a row, a duplicate or quarantined."""

    files: int = 0
    records: int = 0
    rows: int = 0
    duplicates: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    rule_errors: list[str] = field(default_factory=list)  # with rules on: what they raised on the rows, one line each


def land_files(names: list[str], *, lake: Store, state: Store, properties: dict[str, str],
               detector: Detector | None = None) -> Landing:
    """Normalize the alerts and Azure Monitor records of the files `names` ("-" is stdin) into `lake`, each family
    by its own path; quarantine in `state` every record that is refused here or by the normalizer, with its reason
    and location."""
    # Imported here: the normalizer loads pyarrow, which reading a file does not need.
    from shared.land.normalize import FAMILIES, InboundEvent, normalize_events
    from shared.land.quarantine import quarantine

    landing = Landing(files=len(names))
    events: dict[str, list[InboundEvent]] = {}
    for name in names:
        label = "stdin" if name == "-" else name
        for record in records(read_source(name), label):
            landing.records += 1
            metadata = {"file": record.file, "line": record.line}
            if record.refused:
                copy = quarantine(state, raw=record.body, error=record.refused,
                                  metadata={**metadata, "family": record.family})
                landing.quarantined.append(Quarantined(record.location, record.refused, copy))
            else:
                events.setdefault(record.family, []).append(
                    InboundEvent(body=record.body, properties=properties, metadata=metadata))
    quarantined = []
    for family, family_events in sorted(events.items()):
        result = normalize_events(family_events, lake=lake, state=state, detector=detector, family=FAMILIES[family])
        landing.rows += result.rows
        landing.duplicates += result.duplicates
        landing.rule_errors += result.rule_errors
        quarantined += result.quarantined
    seen: dict[str, dict] = {}
    for copy in quarantined:
        if copy not in seen:
            found = state.read(copy)
            seen[copy] = orjson.loads(found.data) if found else {"error": "quarantined", "metadata": {}}
        doc = seen[copy]
        where = doc.get("metadata") or {}
        landing.quarantined.append(Quarantined(f"{where.get('file', '?')}:{where.get('line', '?')}", doc["error"],
                                               copy))
    return landing
