"""Per-source watermark: a small JSON blob written with ETag conditions, so two runs can never both advance it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from shared.core.storage import Store
from shared.core.timestamps import parse_graph_time


@dataclass
class Watermark:
    position: datetime | None
    # (id, lastUpdateDateTime) pairs already sent whose lastUpdateDateTime lies inside the overlap: the next
    # window re-reads them, and these are skipped instead of sent again.
    recent: set[tuple[str, str]] = field(default_factory=set)
    etag: str | None = None


class WatermarkStore:
    def __init__(self, store: Store, source_id: str) -> None:
        self._store = store
        self.name = f"watermarks/{source_id}.json"

    def load(self) -> Watermark:
        found = self._store.read(self.name)
        if found is None:
            return Watermark(position=None)
        doc = orjson.loads(found.data)
        return Watermark(
            position=datetime.fromisoformat(doc["position"]),
            recent={(pair[0], pair[1]) for pair in doc.get("recent", [])},
            etag=found.etag)

    def advance(self, current: Watermark, position: datetime, sent: set[tuple[str, str]],
                overlap: timedelta) -> Watermark:
        """Moves the watermark to `position`; raises PreconditionFailed when another run moved it first."""
        keep_from = position - overlap
        recent = {pair for pair in current.recent | sent if _at_or_after(pair[1], keep_from)}
        doc = {
            "position": position.isoformat(),
            "recent": sorted(recent),
            "updated": datetime.now(position.tzinfo).isoformat(),
        }
        body = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        if current.etag is None:
            etag = self._store.write(self.name, body, create_only=True)
        else:
            etag = self._store.write(self.name, body, if_match=current.etag)
        return Watermark(position=position, recent=recent, etag=etag)



def _at_or_after(stamp: str, moment: datetime) -> bool:
    """Whether a sent lastUpdateDateTime lies at or after `moment`. The value is Graph's, sent as it came; one that
    does not parse is not kept, so at worst it is sent once more (the lake deduplicates it) instead of failing
    every run."""
    parsed = parse_graph_time(stamp)
    return parsed is not None and parsed >= moment
