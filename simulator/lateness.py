"""How long after its lastUpdateDateTime a version shows up in the API.

Graph shows most alerts within seconds of their timestamp and some minutes or hours later (reference §10.1). A
pull that re-reads a fixed overlap catches the first kind; only a reconciliation against Graph catches the tail,
so the simulator must be able to produce it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulator.timefmt import TICKS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Lateness:
    # Most versions: uniform in [0, typical_seconds].
    typical_seconds: float = 5.0
    # This share: log-uniform in [typical_seconds, tail_max_seconds], so the tail thins out towards hours.
    tail_share: float = 0.0
    tail_max_seconds: float = 7200.0

    @classmethod
    def uniform(cls, max_seconds: float) -> Lateness:
        return cls(typical_seconds=max_seconds)

    def draw(self, rng: random.Random) -> int:
        """One version's lateness, in ticks."""
        if self.tail_share and rng.random() < self.tail_share and self.tail_max_seconds > self.typical_seconds:
            low = math.log(max(self.typical_seconds, 1.0))
            seconds = math.exp(rng.uniform(low, math.log(self.tail_max_seconds)))
        else:
            seconds = rng.uniform(0.0, self.typical_seconds)
        return int(seconds * TICKS_PER_SECOND)
