"""Geography: great-circle distance and the network round-trip model used where no measurement exists.

The distance model is fitted on the measured inter-region round trips the catalog ships (AWS cloudping
1-year p50 and Azure's published 30-day p50): see docs/catalog.md, "Latency". It is an estimate with
tens of milliseconds of error on long routes; measured pairs always take precedence.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088

# Round trip = RTT_BASE_MS + RTT_MS_PER_KM * great-circle km, rounded up to whole milliseconds.
# Least-squares slope with the intercept held at 5 ms (a short hop between metros; the measured
# same-region median is 3 ms), over the 2,632 measured AWS and Azure pairs between distinct regions
# with known locations (RMSE 39.5 ms; tests/pricing/test_rtt_model.py re-checks the fit).
RTT_BASE_MS = 5.0
RTT_MS_PER_KM = 0.0166


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def estimated_rtt_ms(distance_km: float) -> int:
    """Round-trip time estimated from distance alone, in whole milliseconds (rounded up)."""
    if distance_km < 0:
        raise ValueError(f"distance_km must be >= 0, got {distance_km}")
    return math.ceil(RTT_BASE_MS + RTT_MS_PER_KM * distance_km)
