"""Commitments, from the rule (DESIGN.md; solver/constraints/availability.py; solver/costing.py):

reserved capacity already bought is used first and its price is sunk: the plan's cost is the instances
bought beyond commitments at their offers' prices plus every commitment, counted once, whether used or
not. What the offer has beyond the committed instances (its availability minus them; unlimited when
unknown) stays buyable at its price. Committed offers are usable even if flagged.

Berlin users, Frankfurt, 1,000 tokens/s per 1-GPU replica, utilisation 100%.
"""

from __future__ import annotations

from solver.domain import OfferFlag
from solver.problem import SolveParams
from tests.solver.helpers import (
    FRA,
    MI300X,
    RESERVED,
    TinyProblem,
    assert_plan,
    solve_tiny,
    usd,
)

COMMITTED = SolveParams(time_limit_s=1, seed=0, deterministic=True, explain=False)
"""A 1 s limit: ample for these problems."""


def _tiny(demand: int) -> TinyProblem:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.model("llama")
    tiny.demand("llama", "berlin", demand)
    return tiny


def test_a_committed_instance_is_used_first_even_when_its_list_price_is_higher() -> None:
    tiny = _tiny(900)
    reserved = tiny.offer(FRA, 4, option=RESERVED, availability=1)
    tiny.offer(FRA, 3)
    tiny.commit(reserved, 1)
    problem = tiny.build()
    # The reserved instance ($4/h) is paid anyway: one replica on it costs nothing more. Total = the sunk
    # $4.00/h, counted once (buying on-demand instead would be $3 + $4 = $7).
    assert_plan(
        solve_tiny(problem, COMMITTED),
        problem,
        {reserved: (1, {"llama": 1})},
        usd(4),
    )


def test_demand_beyond_the_commitment_is_bought_at_the_next_cheapest_price() -> None:
    tiny = _tiny(2500)
    reserved = tiny.offer(FRA, 2, option=RESERVED, availability=1)  # only the committed instance exists
    on_demand = tiny.offer(FRA, 3)
    tiny.commit(reserved, 1)
    problem = tiny.build()
    # 3 replicas: 1 on the committed instance (sunk $2) + 2 on-demand (2 x $3) = $8.00/h.
    assert_plan(
        solve_tiny(problem, COMMITTED),
        problem,
        {reserved: (1, {"llama": 1}), on_demand: (2, {"llama": 2})},
        usd(8),
    )


def test_the_offer_beyond_the_committed_instances_stays_buyable() -> None:
    tiny = _tiny(2500)
    reserved = tiny.offer(FRA, 2, option=RESERVED)  # availability unknown: more can be bought at $2
    tiny.offer(FRA, 3)
    tiny.commit(reserved, 1)
    problem = tiny.build()
    # 3 replicas on 3 reserved instances: 1 committed (sunk $2) + 2 bought at $2 = $6.00/h.
    assert_plan(
        solve_tiny(problem, COMMITTED),
        problem,
        {reserved: (3, {"llama": 3})},
        usd(6),
    )


def test_an_unused_commitment_is_still_paid() -> None:
    tiny = _tiny(900)
    reserved = tiny.offer(FRA, 4, option=RESERVED, gpu=MI300X)  # the model has no MI300X profile
    on_demand = tiny.offer(FRA, 3)
    tiny.commit(reserved, 2)
    problem = tiny.build()
    # One on-demand replica $3 + 2 committed MI300X instances 2 x $4 = $11.00/h.
    result = solve_tiny(problem, COMMITTED)
    assert_plan(result, problem, {on_demand: (1, {"llama": 1})}, usd(11))
    assert result.lower_bound_micro_usd_per_hour is not None
    assert result.lower_bound_micro_usd_per_hour >= usd(8)  # the sunk cost is part of every plan


def test_a_commitment_larger_than_the_need_is_counted_once() -> None:
    tiny = _tiny(900)
    reserved = tiny.offer(FRA, 2, option=RESERVED)
    tiny.offer(FRA, 3)
    tiny.commit(reserved, 3)
    problem = tiny.build()
    # One replica on one of the 3 committed instances; cost = 3 x $2 sunk = $6.00/h, nothing bought.
    assert_plan(
        solve_tiny(problem, COMMITTED),
        problem,
        {reserved: (1, {"llama": 1})},
        usd(6),
    )


def test_a_committed_offer_is_used_even_if_flagged() -> None:
    tiny = _tiny(900)
    reserved = tiny.offer(FRA, 4, option=RESERVED, availability=1, flags=[OfferFlag.STALE])
    tiny.offer(FRA, 3)
    tiny.commit(reserved, 1)
    problem = tiny.build()
    # The instance is already bought; a stale price does not make it unusable. $4.00/h sunk.
    assert_plan(
        solve_tiny(problem, COMMITTED),
        problem,
        {reserved: (1, {"llama": 1})},
        usd(4),
    )
