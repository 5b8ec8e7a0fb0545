"""The independent checker on hand-built plans: every rule broken on purpose is reported with its
ViolationKind and names what breaks it; plans keeping every rule give no violations.

Written from the rules (DESIGN.md "The placement problem", issue 4, docstrings of solver/constraints).
The common problem (``_problem``): Berlin users (EU residency) and New York users (no rule), 900
tokens/s each of model ``llama`` (1 GPU, 1,000 tokens/s per replica on H100, 100 ms service latency,
150 ms SLO), utilisation 100% unless said. Measured round trips:

    from \\ to      Frankfurt  Dublin  Virginia  Zurich
    Berlin            10        25       95       15
    New York          85        75       10       90
"""

from __future__ import annotations

import pytest

from solver.costing import plan_cost, team_costs
from solver.domain import ChurnPolicy, OfferFlag, PurchaseOption, Redundancy
from solver.problem import PLANNED_PURCHASE_OPTIONS, Problem
from solver.result import Violation, ViolationKind
from solver.validate import validate
from tests.solver.helpers import (
    DUB,
    FRA,
    IAD,
    LAM_FRA,
    MI300X,
    RESERVED,
    SPOT,
    ZRH,
    TinyProblem,
    per_month,
    placement,
    plan,
    profile,
    replicas_of,
    route,
    usd,
)

RTT = {
    "berlin": {FRA: 10, DUB: 25, IAD: 95, ZRH: 15, LAM_FRA: 11},
    "new-york": {FRA: 85, DUB: 75, IAD: 10, ZRH: 90, LAM_FRA: 86},
}


class Offers:
    """Offer keys of the common problem."""

    fra = "aws/eu-central-1/-/h100-1x/on_demand"  # $3.00, 4 available
    fra8 = "aws/eu-central-1/-/h100-8x/on_demand"  # $16.00 for 8 GPUs
    fra_spot = "aws/eu-central-1/-/h100-1x/spot"  # $1.00, risk 0.5
    fra_mi = "aws/eu-central-1/-/mi300x-1x/on_demand"  # $1.50, MI300X
    dub = "aws/eu-west-1/-/h100-1x/on_demand"  # $2.50
    iad = "aws/us-east-1/-/h100-1x/on_demand"  # $2.00
    zrh = "gcp/europe-west6/-/h100-1x/on_demand"  # $1.50
    lam = "lambda/europe-central-1/-/h100-1x/on_demand"  # $2.75


def _tiny(
    *,
    utilisation: float = 1.0,
    demand: dict[str, int] | None = None,
    redundancy: Redundancy = Redundancy.NONE,
    share: float = 1.0,
    max_spot_share: float = 0.5,
    slo_ms: int = 150,
) -> TinyProblem:
    tiny = TinyProblem(utilisation=utilisation)
    tiny.source("berlin", rtt_ms=RTT["berlin"], residency=["EU"])
    tiny.source("new-york", rtt_ms=RTT["new-york"])
    assert tiny.offer(FRA, 3, availability=4) == Offers.fra
    assert tiny.offer(FRA, 16, gpus=8) == Offers.fra8
    assert tiny.offer(FRA, 1, option=SPOT, risk=0.5) == Offers.fra_spot
    assert tiny.offer(FRA, "1.5", gpu=MI300X) == Offers.fra_mi
    assert tiny.offer(DUB, "2.5") == Offers.dub
    assert tiny.offer(IAD, 2) == Offers.iad
    assert tiny.offer(ZRH, "1.5") == Offers.zrh
    assert tiny.offer(LAM_FRA, "2.75") == Offers.lam
    tiny.model("llama", slo_ms=slo_ms, redundancy=redundancy, share=share, max_spot_share=max_spot_share)
    for source, tokens in (demand or {"berlin": 900, "new-york": 900}).items():
        tiny.demand("llama", source, tokens)
    return tiny


def _problem(**kwargs: object) -> Problem:
    return _tiny(**kwargs).build()  # type: ignore[arg-type]


GOOD_PLAN = plan(
    placement(Offers.fra, 1, llama=1),
    placement(Offers.iad, 1, llama=1),
    routes=[route("llama", "berlin", FRA), route("llama", "new-york", IAD)],
)
"""Berlin -> Frankfurt (110 ms, EU), New York -> Virginia (110 ms), one replica (1,000) for 900 each."""


def _of_kind(violations: list[Violation], kind: ViolationKind) -> list[Violation]:
    found = [v for v in violations if v.kind is kind]
    assert found, f"no {kind} violation in {violations}"
    return found


def _kinds(violations: list[Violation]) -> set[ViolationKind]:
    return {v.kind for v in violations}


# ------------------------------------------------------------------------------------- a good plan


def test_a_plan_keeping_every_rule_has_no_violations() -> None:
    assert validate(_problem(), GOOD_PLAN) == []


def test_the_good_plan_costs_what_its_instances_cost() -> None:
    # $3.00 (Frankfurt) + $2.00 (Virginia) = $5.00/h.
    assert plan_cost(_problem(), GOOD_PLAN) == usd(5)


# ------------------------------------------------------------------------------------------ packing


def test_too_few_instances_for_the_replicas_is_a_packing_violation() -> None:
    bad = plan(
        placement(Offers.fra, 1, llama=2),  # 2 one-GPU replicas on one 1-GPU instance
        placement(Offers.iad, 1, llama=1),
        routes=GOOD_PLAN.routes,
    )
    (violation,) = _of_kind(validate(_problem(), bad), ViolationKind.PACKING)
    assert violation.offer == Offers.fra


def test_replicas_of_a_model_on_a_gpu_type_it_has_no_profile_for_is_a_packing_violation() -> None:
    bad = plan(
        placement(Offers.fra_mi, 1, llama=1),
        placement(Offers.fra, 1, llama=1),
        placement(Offers.iad, 1, llama=1),
        routes=GOOD_PLAN.routes,
    )
    (violation,) = _of_kind(validate(_problem(), bad), ViolationKind.PACKING)
    assert (violation.model, violation.offer) == ("llama", Offers.fra_mi)


def _big_model_problem(gpus_per_instance: int) -> tuple[Problem, str]:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    key = tiny.offer(FRA, gpus_per_instance, gpus=gpus_per_instance)
    tiny.model("llama-405b", gpus=16)
    tiny.demand("llama-405b", "berlin", 900)
    return tiny.build(), key


@pytest.mark.parametrize(
    ("gpus_per_instance", "instances", "ok"),
    [
        pytest.param(8, 2, True, id="16 GPUs on 2 x 8-GPU instances"),
        pytest.param(8, 1, False, id="16 GPUs on 1 x 8-GPU instance"),
        pytest.param(16, 1, True, id="16 GPUs on 1 x 16-GPU instance"),
        pytest.param(4, 4, False, id="16 GPUs on 4 x 4-GPU instances: below the spanning minimum"),
        pytest.param(1, 16, False, id="16 GPUs on 16 x 1-GPU instances"),
    ],
)
def test_a_replica_spans_only_whole_instances_of_eight_gpus_or_more(
    gpus_per_instance: int, instances: int, ok: bool
) -> None:
    problem, key = _big_model_problem(gpus_per_instance)
    candidate = plan(
        replicas_of(key, instances, {"llama-405b": 1}), routes=[route("llama-405b", "berlin", FRA)]
    )
    violations = validate(problem, candidate)
    if ok:
        assert violations == []
    else:
        assert _kinds(violations) == {ViolationKind.PACKING}
        assert violations[0].offer == key


def test_replicas_of_two_models_sharing_an_instance_fit_by_first_fit() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    six = tiny.offer(FRA, 6, gpus=6)
    tiny.model("mixtral", gpus=4)
    tiny.model("llama-8b", gpus=2)
    tiny.demand("mixtral", "berlin", 2500)
    tiny.demand("llama-8b", "berlin", 2500)
    problem = tiny.build()
    routes = [route("mixtral", "berlin", FRA), route("llama-8b", "berlin", FRA)]
    # 3 x 4 GPUs + 3 x 2 GPUs: 3 instances of 6 hold them (4 + 2 each); 18 GPUs, so 3 is also the count.
    assert validate(problem, plan(replicas_of(six, 3, {"mixtral": 3, "llama-8b": 3}), routes=routes)) == []
    # 3 x 4 GPUs alone: 12 GPUs would be 2 instances by count, but each 4-GPU replica needs its own.
    short = plan(replicas_of(six, 2, {"mixtral": 3, "llama-8b": 3}), routes=routes)
    assert _kinds(validate(problem, short)) >= {ViolationKind.PACKING}


# ------------------------------------------------------------------------------------- availability


def test_more_instances_than_available_is_an_availability_violation() -> None:
    bad = plan(placement(Offers.fra, 5, llama=5), placement(Offers.iad, 1, llama=1), routes=GOOD_PLAN.routes)
    (violation,) = _of_kind(validate(_problem(), bad), ViolationKind.AVAILABILITY)
    assert violation.offer == Offers.fra


def test_a_flagged_offer_is_a_purchase_option_violation_unless_committed() -> None:
    tiny = _tiny()
    stale = tiny.offer(FRA, 1, instance_type="h100-1x-old", flags=[OfferFlag.STALE])
    problem = tiny.build()
    candidate = plan(placement(stale, 1, llama=1), placement(Offers.iad, 1, llama=1), routes=GOOD_PLAN.routes)
    (violation,) = _of_kind(validate(problem, candidate), ViolationKind.PURCHASE_OPTION)
    assert violation.offer == stale
    tiny.commit(stale, 1)
    assert validate(tiny.build(), candidate) == []


def test_flex_start_is_a_purchase_option_violation_when_the_solve_excludes_it() -> None:
    tiny = _tiny()
    flex = tiny.offer(FRA, 1, option=PurchaseOption.FLEX_START)
    problem = tiny.build()
    candidate = plan(placement(flex, 1, llama=1), placement(Offers.iad, 1, llama=1), routes=GOOD_PLAN.routes)
    (violation,) = _of_kind(
        validate(problem, candidate, purchase_options=PLANNED_PURCHASE_OPTIONS), ViolationKind.PURCHASE_OPTION
    )
    assert violation.offer == flex


# ------------------------------------------------------------------------------------------ demand


def test_a_demand_with_no_route_is_a_demand_violation() -> None:
    bad = plan(*GOOD_PLAN.placements, routes=[route("llama", "berlin", FRA)])
    (violation,) = _of_kind(validate(_problem(), bad), ViolationKind.DEMAND)
    assert (violation.model, violation.source) == ("llama", "new-york")


def test_a_route_for_a_source_without_demand_is_a_demand_violation() -> None:
    problem = _problem(demand={"berlin": 900})
    bad = plan(*GOOD_PLAN.placements, routes=GOOD_PLAN.routes)  # New York has no demand here
    (violation,) = _of_kind(validate(problem, bad), ViolationKind.DEMAND)
    assert (violation.model, violation.source) == ("llama", "new-york")


def test_a_route_to_an_unknown_region_is_an_unknown_reference() -> None:
    bad = plan(
        *GOOD_PLAN.placements,
        routes=[route("llama", "berlin", FRA), route("llama", "new-york", "aws/ap-south-1")],
    )
    assert ViolationKind.UNKNOWN_REFERENCE in _kinds(validate(_problem(), bad))


def test_a_placement_on_an_unknown_offer_is_an_unknown_reference() -> None:
    bad = plan(
        placement("aws/eu-central-1/-/p9.huge/on_demand", 1, llama=1),
        *GOOD_PLAN.placements,
        routes=GOOD_PLAN.routes,
    )
    assert ViolationKind.UNKNOWN_REFERENCE in _kinds(validate(_problem(), bad))


def test_replicas_of_an_unknown_model_are_reported_not_raised() -> None:
    bad = plan(
        placement(Offers.fra, 2, llama=1, mistral=1),
        placement(Offers.iad, 1, llama=1),
        routes=GOOD_PLAN.routes,
    )
    violations = validate(_problem(), bad)
    assert any(v.model == "mistral" for v in violations), violations


# ----------------------------------------------------------------------------------------- latency


def test_a_route_over_the_slo_is_a_latency_violation() -> None:
    # New York -> Frankfurt: 85 + 100 = 185 ms, 35 ms over the 150 ms SLO.
    bad = plan(
        placement(Offers.fra, 2, llama=2),
        routes=[route("llama", "berlin", FRA), route("llama", "new-york", FRA)],
    )
    (violation,) = _of_kind(validate(_problem(), bad), ViolationKind.LATENCY)
    assert (violation.model, violation.source, violation.region) == ("llama", "new-york", FRA)
    assert "35 ms" in violation.message


def test_a_route_exactly_at_the_slo_keeps_it() -> None:
    # SLO 185 ms: New York -> Frankfurt 85 + 100 = 185 ms is allowed.
    candidate = plan(
        placement(Offers.fra, 2, llama=2),
        routes=[route("llama", "berlin", FRA), route("llama", "new-york", FRA)],
    )
    assert validate(_problem(slo_ms=185), candidate) == []


# --------------------------------------------------------------------------------------- residency


def test_a_route_outside_the_residency_rule_is_a_residency_violation() -> None:
    # Berlin -> Zurich: 15 + 100 = 115 ms is within the SLO, but Switzerland is not in the EU.
    bad = plan(
        placement(Offers.zrh, 1, llama=1),
        placement(Offers.iad, 1, llama=1),
        routes=[route("llama", "berlin", ZRH), route("llama", "new-york", IAD)],
    )
    violations = validate(_problem(), bad)
    assert _kinds(violations) == {ViolationKind.RESIDENCY}
    (violation,) = violations
    assert (violation.model, violation.source, violation.region) == ("llama", "berlin", ZRH)


# ---------------------------------------------------------------------------------------- capacity


def test_traffic_beyond_the_capacity_of_a_region_is_a_capacity_violation() -> None:
    # 900 + 900 from Berlin to Frankfurt's single replica (1,000 tokens/s); SLO 200 so both may go.
    problem = _problem(demand={"berlin": 900, "new-york": 900}, slo_ms=200)
    bad = plan(
        placement(Offers.fra, 1, llama=1),
        routes=[route("llama", "berlin", FRA), route("llama", "new-york", FRA)],
    )
    (violation,) = _of_kind(validate(problem, bad), ViolationKind.CAPACITY)
    assert (violation.model, violation.region) == ("llama", FRA)


@pytest.mark.parametrize(("utilisation", "ok"), [(1.0, True), (0.8, False)])
def test_capacity_counts_at_the_target_utilisation(utilisation: float, ok: bool) -> None:
    # One replica (1,000 tokens/s) for 900: fine at 100%, not at 80% (800).
    violations = validate(_problem(utilisation=utilisation), GOOD_PLAN)
    if ok:
        assert violations == []
    else:
        assert _kinds(violations) == {ViolationKind.CAPACITY}
        assert {v.region for v in violations} == {FRA, IAD}


def _two_gpu_types(berlin: int, new_york: int) -> tuple[Problem, object]:
    # Frankfurt has one H100 replica (100 ms service) and one MI300X replica (300 ms), 1,000 tokens/s
    # each; SLO 400 ms. Berlin (10 ms away) may use both; New York (measured 150 ms) only the H100:
    # 150 + 100 = 250 ms, 150 + 300 = 450 ms.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.source("new-york", rtt_ms={FRA: 150})
    h100 = tiny.offer(FRA, 3)
    mi = tiny.offer(FRA, 2, gpu=MI300X)
    tiny.model("llama", slo_ms=400, profiles=[profile(service_ms=100), profile(MI300X, service_ms=300)])
    tiny.demand("llama", "berlin", berlin)
    tiny.demand("llama", "new-york", new_york)
    candidate = plan(
        placement(h100, 1, llama=1),
        placement(mi, 1, llama=1),
        routes=[route("llama", "berlin", FRA), route("llama", "new-york", FRA)],
    )
    return tiny.build(), candidate


def test_capacity_split_across_gpu_types_is_checked_by_flow_not_totals() -> None:
    # Berlin 1,200 + New York 500 = 1,700 <= 2,000 in total, and by flow: New York 500 on the H100,
    # Berlin 500 on the H100 + 700 on the MI300X. (Serving Berlin first on the H100 would strand New York.)
    problem, candidate = _two_gpu_types(berlin=1200, new_york=500)
    assert validate(problem, candidate) == []  # type: ignore[arg-type]


def test_traffic_that_only_a_fast_gpu_type_can_serve_must_fit_that_gpu_type() -> None:
    # Berlin 500 + New York 1,200 = 1,700 <= 2,000 in total, but New York can use only the H100's 1,000.
    problem, candidate = _two_gpu_types(berlin=500, new_york=1200)
    (violation,) = _of_kind(validate(problem, candidate), ViolationKind.CAPACITY)  # type: ignore[arg-type]
    assert (violation.model, violation.region) == ("llama", FRA)


def test_spot_capacity_counts_at_its_risk_adjusted_value() -> None:
    # Frankfurt spot at risk 0.5: 2 replicas count 1,000 (>= 900), 1 replica counts 500 (< 900).
    problem = _problem(max_spot_share=1.0)
    routes = GOOD_PLAN.routes
    enough = plan(placement(Offers.fra_spot, 2, llama=2), placement(Offers.iad, 1, llama=1), routes=routes)
    short = plan(placement(Offers.fra_spot, 1, llama=1), placement(Offers.iad, 1, llama=1), routes=routes)
    assert validate(problem, enough) == []
    (violation,) = _of_kind(validate(problem, short), ViolationKind.CAPACITY)
    assert (violation.model, violation.region) == ("llama", FRA)


# -------------------------------------------------------------------------------------- redundancy


def test_losing_a_region_must_leave_capacity_the_sources_can_reach() -> None:
    # Region redundancy, SLO 200 ms, 500 tokens/s from each source. Frankfurt 1 replica, Virginia 2.
    # Losing Frankfurt leaves 2,000 tokens/s for 1,000 in total, but Berlin's EU traffic cannot go to
    # Virginia: a violation that comparing totals would miss.
    problem = _problem(redundancy=Redundancy.REGION, slo_ms=200, demand={"berlin": 500, "new-york": 500})
    candidate = plan(
        placement(Offers.fra, 1, llama=1),
        placement(Offers.iad, 2, llama=2),
        routes=[route("llama", "berlin", FRA), route("llama", "new-york", IAD)],
    )
    violations = validate(problem, candidate)
    # Losing Virginia leaves Frankfurt's 1,000 for 500 + 500 (New York -> Frankfurt is 185 ms <= 200):
    # fine. So exactly one violation, naming Frankfurt.
    assert _kinds(violations) == {ViolationKind.REDUNDANCY}
    (violation,) = violations
    assert (violation.model, violation.region) == ("llama", FRA)


def test_a_second_eu_region_makes_the_region_loss_survivable() -> None:
    problem = _problem(redundancy=Redundancy.REGION, slo_ms=200, demand={"berlin": 500, "new-york": 500})
    candidate = plan(
        placement(Offers.fra, 1, llama=1),
        placement(Offers.dub, 1, llama=1),
        placement(Offers.iad, 2, llama=2),
        routes=[route("llama", "berlin", FRA), route("llama", "new-york", IAD)],
    )
    assert validate(problem, candidate) == []


def test_failover_is_checked_at_full_utilisation() -> None:
    # Utilisation 80%: Berlin 900 (New York 0 here) on Frankfurt 1 + Dublin 1. Normal: 2,000 x 0.8 =
    # 1,600 >= 900. Losing either region leaves 1,000 >= 900 at 100% (it would be 800 < 900 at 80%).
    problem = _problem(utilisation=0.8, redundancy=Redundancy.REGION, demand={"berlin": 900})
    candidate = plan(
        placement(Offers.fra, 1, llama=1),
        placement(Offers.dub, 1, llama=1),
        routes=[route("llama", "berlin", FRA, 0.5), route("llama", "berlin", DUB, 0.5)],
    )
    assert validate(problem, candidate) == []


@pytest.mark.parametrize(("share", "ok"), [(0.5, True), (1.0, False)])
def test_the_redundancy_share_is_what_must_survive(share: float, ok: bool) -> None:
    # Berlin 1,800 on Frankfurt 2 + Dublin 1. Losing Frankfurt leaves 1,000: enough for 50% (900),
    # not for 100% (1,800).
    problem = _problem(redundancy=Redundancy.REGION, share=share, demand={"berlin": 1800})
    candidate = plan(
        placement(Offers.fra, 2, llama=2),
        placement(Offers.dub, 1, llama=1),
        routes=[route("llama", "berlin", FRA, 0.5), route("llama", "berlin", DUB, 0.5)],
    )
    violations = validate(problem, candidate)
    if ok:
        assert violations == []
    else:
        (violation,) = violations
        assert (violation.kind, violation.model, violation.region) == (ViolationKind.REDUNDANCY, "llama", FRA)


def test_provider_redundancy_needs_capacity_outside_each_provider() -> None:
    problem = _problem(redundancy=Redundancy.PROVIDER, demand={"berlin": 900})
    two_aws_regions = plan(
        placement(Offers.fra, 1, llama=1),
        placement(Offers.dub, 1, llama=1),
        routes=[route("llama", "berlin", FRA, 0.5), route("llama", "berlin", DUB, 0.5)],
    )
    (violation,) = _of_kind(validate(problem, two_aws_regions), ViolationKind.REDUNDANCY)
    assert violation.model == "llama"
    assert "aws" in violation.message
    aws_and_lambda = plan(
        placement(Offers.fra, 1, llama=1),
        placement(Offers.lam, 1, llama=1),
        routes=[route("llama", "berlin", FRA, 0.5), route("llama", "berlin", LAM_FRA, 0.5)],
    )
    assert validate(problem, aws_and_lambda) == []


# -------------------------------------------------------------------------------------------- spot


def test_spot_capacity_above_the_cap_is_a_spot_violation() -> None:
    # Cap 50%; raw capacity 2,000 spot of 3,000 = 67%.
    bad = plan(
        placement(Offers.fra_spot, 2, llama=2),
        placement(Offers.iad, 1, llama=1),
        routes=GOOD_PLAN.routes,
    )
    (violation,) = _of_kind(validate(_problem(max_spot_share=0.5), bad), ViolationKind.SPOT)
    assert violation.model == "llama"
    # 2,000 of 4,000 = 50%: at the cap, allowed.
    at_cap = plan(
        placement(Offers.fra_spot, 2, llama=2),
        placement(Offers.iad, 2, llama=2),
        routes=GOOD_PLAN.routes,
    )
    assert validate(_problem(max_spot_share=0.5), at_cap) == []


# ----------------------------------------------------------------------------------------- budgets


@pytest.mark.parametrize(("limit_usd_per_hour", "ok"), [("5", True), ("4.99", False)])
def test_the_global_budget(limit_usd_per_hour: str, ok: bool) -> None:
    tiny = _tiny()
    tiny.budget(per_month(limit_usd_per_hour))  # the good plan costs $5.00/h = $3,650/month
    violations = validate(tiny.build(), GOOD_PLAN)
    if ok:
        assert violations == []
    else:
        assert _kinds(violations) == {ViolationKind.BUDGET}


def test_the_global_budget_counts_commitments_used_or_not() -> None:
    tiny = _tiny()
    reserved = tiny.offer(FRA, 4, option=RESERVED, gpu=MI300X)
    tiny.commit(reserved, 1)
    tiny.budget(per_month(9))  # $5 + $4 sunk = $9.00/h
    assert plan_cost(tiny.build(), GOOD_PLAN) == usd(9)
    assert validate(tiny.build(), GOOD_PLAN) == []
    tiny.budgets.clear()
    tiny.budget(per_month("8.99"))
    assert _kinds(validate(tiny.build(), GOOD_PLAN)) == {ViolationKind.BUDGET}


@pytest.mark.parametrize(("limit_usd_per_hour", "ok"), [("2", True), ("1.99", False)])
def test_a_team_is_charged_its_replicas_gpus_not_the_idle_ones(limit_usd_per_hour: str, ok: bool) -> None:
    # Berlin's replica on the 8-GPU instance ($16/h): team chat is charged 1 GPU = $2.00/h; the 7 idle
    # GPUs are charged to no team (New York on Virginia: another $2.00 for chat).
    tiny = _tiny(demand={"berlin": 900})
    tiny.budget(per_month(limit_usd_per_hour), team="chat")
    problem = tiny.build()
    candidate = plan(placement(Offers.fra8, 1, llama=1), routes=[route("llama", "berlin", FRA)])
    assert team_costs(problem, candidate) == {"chat": usd(2)}
    violations = validate(problem, candidate)
    if ok:
        assert violations == []
    else:
        (violation,) = violations
        assert violation.kind is ViolationKind.BUDGET
        assert "chat" in violation.message


# ------------------------------------------------------------------------------------------- churn


@pytest.mark.parametrize(("moved", "ok"), [(2, True), (3, False)])
def test_moves_beyond_the_disruption_budget_are_a_churn_violation(moved: int, ok: bool) -> None:
    tiny = _tiny(demand={"berlin": 3500})
    tiny.churn = ChurnPolicy(max_moved_share=0.5)
    tiny.current_fleet = plan(placement(Offers.fra, 4, llama=4))
    problem = tiny.build()
    placements = [placement(Offers.dub, moved, llama=moved)]
    if moved < 4:
        placements.append(placement(Offers.fra, 4 - moved, llama=4 - moved))
    candidate = plan(
        *placements,
        routes=[route("llama", "berlin", FRA, (4 - moved) / 4), route("llama", "berlin", DUB, moved / 4)],
    )
    violations = validate(problem, candidate)
    if ok:
        assert violations == []
    else:
        assert _kinds(violations) == {ViolationKind.CHURN}


# ------------------------------------------------------------------------------------------ costing


def test_plan_cost_counts_commitments_once_and_instances_beyond_them_at_their_price() -> None:
    tiny = _tiny()
    reserved = tiny.offer(FRA, 2, option=RESERVED)
    tiny.commit(reserved, 1)
    problem = tiny.build()
    # 3 reserved instances, 1 committed: 1 x $2 sunk + 2 x $2 bought; Virginia $2: $8.00/h.
    candidate = plan(
        placement(reserved, 3, llama=1),
        placement(Offers.iad, 1, llama=1),
        routes=GOOD_PLAN.routes,
    )
    assert plan_cost(problem, candidate) == usd(8)
    # Nothing placed at all: the commitment is still paid.
    assert plan_cost(problem, plan()) == usd(2)
