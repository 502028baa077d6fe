"""The seam between landing and the rules: what the land stage calls on the rows it just wrote.

The land stage never imports `detections/` (that package imports the stages); the wiring at the top builds a
`detections.realtime.Detector` from the settings and hands it down, and anything with this method will do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from shared.core.storage import Store


class Detector(Protocol):
    def detect(self, tables: Sequence[pa.Table], *, lake: Store, state: Store, now: datetime) -> object:
        """Run once on the rows of `tables`, the batch's, just landed in `lake`, before the batch is acknowledged; a
        storage failure raises (the batch is delivered again), a rule's own failure must not: its result's
        `failures` lists them."""
