"""Availability and usable offers, from the rule (DESIGN.md; solver/constraints/availability.py):

- no more instances of an offer than its availability (None = unknown, no limit);
- offers flagged stale, price placeholder or spot-not-discounted are never planned;
- flex-start capacity is not a planned purchase option by default (SolveParams.purchase_options).

One region (Frankfurt, 10 ms), SLO 1,000 ms, utilisation 100%, 1,000 tokens/s per 1-GPU replica.
"""

from __future__ import annotations

import pytest

from solver.domain import OfferFlag, PurchaseOption
from tests.solver.helpers import (
    DUB,
    EXPLAIN,
    FRA,
    PARAMS,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    solve_tiny,
    usd,
)


def _llama(demand: int) -> TinyProblem:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.model("llama")
    tiny.demand("llama", "berlin", demand)
    return tiny


def test_a_cheap_offer_with_one_instance_available_is_topped_up_by_a_dearer_one() -> None:
    tiny = _llama(1800)
    cheap = tiny.offer(FRA, 2, availability=1, instance_type="h100-1x-a")
    dear = tiny.offer(FRA, 3, instance_type="h100-1x-b")
    problem = tiny.build()
    # 1,800 tokens/s = 2 replicas. Only 1 cheap instance: 1 x $2 + 1 x $3 = $5.00/h (not 2 x $2 = $4).
    assert_plan(
        solve_tiny(problem, PARAMS),
        problem,
        {cheap: (1, {"llama": 1}), dear: (1, {"llama": 1})},
        usd(5),
        proven=False,  # weak bound: test_proof.py
    )


def test_an_offer_with_zero_availability_is_never_used() -> None:
    tiny = _llama(900)
    tiny.offer(FRA, 1, availability=0, instance_type="h100-1x-a")
    dear = tiny.offer(FRA, 3, instance_type="h100-1x-b")
    problem = tiny.build()
    # The $1 offer has no instance to give: one $3 instance.
    assert_plan(
        solve_tiny(problem, PARAMS), problem, {dear: (1, {"llama": 1})}, usd(3), proven=False
    )  # weak bound: test_proof.py


def test_an_unavailable_cheaper_offer_in_another_region_does_not_prevent_a_plan() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25})
    fra = tiny.offer(FRA, 3)
    tiny.offer(DUB, 1, availability=0)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 900)
    problem = tiny.build()
    # Dublin's $1 offer has no instance to give: one $3 instance in Frankfurt.
    assert_plan(solve_tiny(problem, PARAMS), problem, {fra: (1, {"llama": 1})}, usd(3), proven=False)


def test_unknown_availability_means_no_limit() -> None:
    tiny = _llama(4500)
    only = tiny.offer(FRA, 2, availability=None)
    problem = tiny.build()
    # 4,500 tokens/s = 5 replicas = 5 instances x $2 = $10.00/h.
    assert_plan(solve_tiny(problem, PARAMS), problem, {only: (5, {"llama": 5})}, usd(10))


def test_availability_short_of_the_demand_is_infeasible() -> None:
    tiny = _llama(1800)
    tiny.offer(FRA, 2, availability=1)
    # 2 replicas needed, 1 instance of the only offer can be had.
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin")


@pytest.mark.parametrize(
    "flag", [OfferFlag.STALE, OfferFlag.PRICE_PLACEHOLDER, OfferFlag.SPOT_NOT_DISCOUNTED]
)
def test_offers_with_an_excluding_flag_are_never_planned(flag: OfferFlag) -> None:
    tiny = _llama(900)
    tiny.offer(FRA, 1, instance_type="h100-1x-a", flags=[flag])
    dear = tiny.offer(FRA, 3, instance_type="h100-1x-b")
    problem = tiny.build()
    # The flagged $1 offer is not a price one can pay: one $3 instance.
    assert_plan(solve_tiny(problem, PARAMS), problem, {dear: (1, {"llama": 1})}, usd(3))


def test_a_relabelled_offer_is_planned() -> None:
    tiny = _llama(900)
    relabelled = tiny.offer(FRA, 1, instance_type="h100-1x-a", flags=[OfferFlag.RELABELLED])
    tiny.offer(FRA, 3, instance_type="h100-1x-b")
    problem = tiny.build()
    # RELABELLED is a caveat, not an exclusion: the $1 offer wins.
    assert_plan(solve_tiny(problem, PARAMS), problem, {relabelled: (1, {"llama": 1})}, usd(1))


def test_flex_start_capacity_is_not_planned_by_default() -> None:
    tiny = _llama(900)
    tiny.offer(FRA, 1, option=PurchaseOption.FLEX_START)
    dear = tiny.offer(FRA, 3)
    problem = tiny.build()
    # Flex-start is queued and time-boxed: the $1 flex-start offer is not used; one $3 on-demand instance.
    assert_plan(solve_tiny(problem, PARAMS), problem, {dear: (1, {"llama": 1})}, usd(3))


def test_only_flagged_offers_is_infeasible() -> None:
    tiny = _llama(900)
    tiny.offer(FRA, 1, flags=[OfferFlag.STALE])
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin")
