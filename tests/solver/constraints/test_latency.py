"""Latency SLO, from the rule (DESIGN.md; solver/constraints/latency.py):

traffic from a source may go to a (region, GPU type) only if round trip + the model's service latency on
that GPU type <= the model's SLO. Round trips are measured where known, else the distance model
(solver/geo.py: 5 ms + 0.0166 ms/km, rounded up).

Round trips here are measured (exact), 1,000 tokens/s per 1-GPU replica, utilisation 100%.
"""

from __future__ import annotations

import pytest

from tests.solver.helpers import (
    EXPLAIN,
    FRA,
    IAD,
    MI300X,
    PARAMS,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    profile,
    solve_tiny,
    usd,
)


def _near_dear_far_cheap(far_rtt_ms: int) -> tuple[TinyProblem, str, str]:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 20, IAD: far_rtt_ms})
    near = tiny.offer(FRA, 3)  # $3.00, 20 ms away
    far = tiny.offer(IAD, 2)  # $2.00, far away
    tiny.model("llama", slo_ms=500, service_ms=300)
    tiny.demand("llama", "berlin", 900)
    return tiny, near, far


def test_the_cheap_far_region_that_breaks_the_slo_is_not_used() -> None:
    tiny, near, _ = _near_dear_far_cheap(far_rtt_ms=230)
    problem = tiny.build()
    # Virginia: 230 ms + 300 ms = 530 ms, 30 ms over the 500 ms SLO. Frankfurt: 20 + 300 = 320 ms.
    # One replica in Frankfurt = $3.00/h.
    assert_plan(solve_tiny(problem, PARAMS), problem, {near: (1, {"llama": 1})}, usd(3))


def test_a_region_exactly_at_the_slo_is_allowed() -> None:
    tiny, _, far = _near_dear_far_cheap(far_rtt_ms=200)
    problem = tiny.build()
    # Virginia: 200 + 300 = 500 ms = the SLO, allowed: one replica there = $2.00/h.
    assert_plan(solve_tiny(problem, PARAMS), problem, {far: (1, {"llama": 1})}, usd(2))


def test_a_gpu_type_too_slow_for_the_slo_is_not_used_in_an_allowed_region() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 80})
    h100 = tiny.offer(FRA, 3)
    tiny.offer(FRA, "1.5", gpu=MI300X)
    tiny.model("llama", slo_ms=500, profiles=[profile(service_ms=100), profile(MI300X, service_ms=450)])
    tiny.demand("llama", "berlin", 900)
    problem = tiny.build()
    # H100: 80 + 100 = 180 ms; MI300X: 80 + 450 = 530 ms, over. One H100 replica = $3.00/h.
    assert_plan(solve_tiny(problem, PARAMS), problem, {h100: (1, {"llama": 1})}, usd(3))


def test_each_source_is_served_within_its_own_slo() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 15, IAD: 90})
    tiny.source("new-york", rtt_ms={FRA: 85, IAD: 10})
    fra = tiny.offer(FRA, 3)
    iad = tiny.offer(IAD, 2)
    tiny.model("llama", slo_ms=150, service_ms=100)
    tiny.demand("llama", "berlin", 800)
    tiny.demand("llama", "new-york", 800)
    problem = tiny.build()
    # Berlin -> Virginia 190 ms and New York -> Frankfurt 185 ms break the 150 ms SLO. Serving both from
    # Virginia (2 replicas, $4) is not allowed: 1 in Frankfurt ($3) + 1 in Virginia ($2) = $5.00/h.
    assert_plan(
        solve_tiny(problem, PARAMS), problem, {fra: (1, {"llama": 1}), iad: (1, {"llama": 1})}, usd(5)
    )


def test_no_region_within_the_slo_is_infeasible() -> None:
    tiny, _, _ = _near_dear_far_cheap(far_rtt_ms=230)
    tiny.models.clear()
    tiny.model("llama", slo_ms=300, service_ms=300)  # 20 ms + 300 ms = 320 ms, over 300 ms everywhere
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin", "SLO")


@pytest.mark.parametrize(("slo_ms", "feasible"), [(105, True), (104, False)])
def test_the_distance_model_is_used_where_no_round_trip_is_measured(slo_ms: int, feasible: bool) -> None:
    tiny = TinyProblem()
    tiny.source("ashburn", rtt_ms=None)  # no anchor: users at the Virginia region's own coordinates
    iad = tiny.offer(IAD, 2)
    tiny.model("llama", slo_ms=slo_ms, service_ms=100)
    tiny.demand("llama", "ashburn", 900)
    problem = tiny.build()
    # Round trip = ceil(5 ms + 0.0166 ms/km x 0 km) = 5 ms; 5 + 100 = 105 ms end to end.
    if feasible:
        assert_plan(solve_tiny(problem, PARAMS), problem, {iad: (1, {"llama": 1})}, usd(2))
    else:
        assert_infeasible(solve_tiny(problem, EXPLAIN), "llama", "ashburn")


def test_the_diagnosis_says_how_far_over_the_slo_the_nearest_region_is() -> None:
    tiny, _, _ = _near_dear_far_cheap(far_rtt_ms=230)
    tiny.models.clear()
    tiny.model("llama", slo_ms=300, service_ms=300)
    # Frankfurt: 20 + 300 = 320 ms, 20 ms over the 300 ms SLO (Virginia: 230 ms over).
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin", "20 ms")
