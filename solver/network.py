"""Network round trips from demand sources to regions.

A source anchored to a catalog region uses the measured round trip from that region where the catalog
has one (same-provider matrices: AWS cloudping, Azure's published medians); otherwise the distance
model of ``solver.geo`` from the source's own location. Round trips are whole milliseconds, rounded up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from solver.domain import DemandSource, Region
from solver.geo import estimated_rtt_ms, great_circle_km
from solver.problem import RttMeasurement


class RttTable:
    def __init__(self, measurements: Iterable[RttMeasurement]) -> None:
        self._measured: dict[tuple[str, str], float] = {(m.src, m.dst): m.rtt_ms for m in measurements}

    def measured(self, src: str, dst: str) -> float | None:
        return self._measured.get((src, dst))

    def source_to_region(self, source: DemandSource, region: Region) -> tuple[int, str]:
        """Round trip in ms and how it was obtained (``measured`` or ``distance model``)."""
        if source.anchor_region is not None:
            value = self.measured(source.anchor_region, region.key)
            if value is not None:
                return math.ceil(value), "measured"
        km = great_circle_km(source.lat, source.lon, region.lat, region.lon)
        return estimated_rtt_ms(km), "distance model"

    def rtt_ms(self, source: DemandSource, region: Region) -> int:
        return self.source_to_region(source, region)[0]
