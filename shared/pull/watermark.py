"""Per-source watermark: a small JSON blob written with ETag conditions, so two runs can never both advance it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from shared.core.storage import Store
from shared.core.timestamps import parse_graph_time


# A version sent: (id, serviceSource, lastUpdateDateTime), serviceSource "" when it had none.
Sent = tuple[str, str, str]
# What a watermark written before serviceSource was part of an alert's identity kept: (id, lastUpdateDateTime).
LegacyPair = tuple[str, str]


@dataclass
class Watermark:
    position: datetime | None
    # Versions already sent whose lastUpdateDateTime lies inside the overlap: the next window re-reads them, and
    # these are skipped instead of sent again.
    recent: set[Sent] = field(default_factory=set)
    etag: str | None = None
    # Pairs of a watermark written before: they stand for the id under any serviceSource, until they leave the
    # overlap. At worst a twin the old pull never sent is skipped once more; it could not have landed before
    # either, and the audit finds it (it keys alerts on serviceSource).
    legacy: set[LegacyPair] = field(default_factory=set)

    def was_sent(self, version: Sent) -> bool:
        return version in self.recent or (version[0], version[2]) in self.legacy


class WatermarkStore:
    def __init__(self, store: Store, source_id: str) -> None:
        self._store = store
        self.name = f"watermarks/{source_id}.json"

    def load(self) -> Watermark:
        found = self._store.read(self.name)
        if found is None:
            return Watermark(position=None)
        doc = orjson.loads(found.data)
        entries = doc.get("recent", [])
        return Watermark(
            position=datetime.fromisoformat(doc["position"]),
            recent={(e[0], e[1], e[2]) for e in entries if len(e) == 3},
            legacy={(e[0], e[1]) for e in entries if len(e) == 2},
            etag=found.etag)

    def advance(self, current: Watermark, position: datetime, sent: set[Sent],
                overlap: timedelta) -> Watermark:
        """Moves the watermark to `position`; raises PreconditionFailed when another run moved it first."""
        keep_from = position - overlap
        recent = {version for version in current.recent | sent if _at_or_after(version[2], keep_from)}
        legacy = {pair for pair in current.legacy if _at_or_after(pair[1], keep_from)}
        doc = {
            "position": position.isoformat(),
            "recent": sorted(recent) + sorted(legacy),
            "updated": datetime.now(position.tzinfo).isoformat(),
        }
        body = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        if current.etag is None:
            etag = self._store.write(self.name, body, create_only=True)
        else:
            etag = self._store.write(self.name, body, if_match=current.etag)
        return Watermark(position=position, recent=recent, etag=etag, legacy=legacy)



def _at_or_after(stamp: str, moment: datetime) -> bool:
    """Whether a sent lastUpdateDateTime lies at or after `moment`. The value is Graph's, sent as it came; one that
    does not parse is not kept, so at worst it is sent once more (the lake deduplicates it) instead of failing
    every run."""
    parsed = parse_graph_time(stamp)
    return parsed is not None and parsed >= moment
