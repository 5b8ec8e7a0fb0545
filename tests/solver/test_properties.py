"""Properties of ``solve`` over random small problems (Hypothesis, derandomized: the same examples on
every run).

Problems: 2-4 regions, 2-6 offers (H100 or MI300X, 1-8 GPUs, on-demand or spot, availability unknown or
0-4, now and then a stale price), 1-2 models (one or two profiles, 150-700 ms SLOs, any redundancy level,
a spot cap), 1-3 sources (some with an EU residency rule), measured round trips, sometimes a global
budget, sometimes one committed (reserved, already paid) instance of the first offer.

(i)   a returned plan keeps every rule by the independent checker, and its cost is what the checker's
      costing says;
(ii)  the returned cost is never below the returned bound;
(iii) adding an offer never raises the optimal cost (within the relative gap), and never turns a problem
      with a plan into one without;
(iv)  "infeasible" comes with an explanation; a demand that no offer can serve (by the rules, checked
      here independently) is diagnosed as infeasible, naming the model and the source; a problem
      without coupling rules (availability, budgets, redundancy, spot caps) in which every demand has an
      eligible offer gets a plan;
(v)   with ``deterministic=True`` a repeated solve returns the same status, plan, cost and bound;
(vi)  (i) and (ii) hold as well where the whole MIP runs on a worker beside the search (its bound and
      its plan taken at the end).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from solver.costing import plan_cost
from solver.domain import OfferFlag, Redundancy
from solver.problem import Problem, SolveParams
from solver.result import SolveResult, SolveStatus
from solver.tuning import SolverTuning
from solver.validate import validate
from tests.solver.helpers import (
    DUB,
    FRA,
    H100,
    IAD,
    LAM_FRA,
    LAM_IAD,
    MI300X,
    ON_DEMAND,
    PARAMS,
    SPOT,
    ZRH,
    TinyProblem,
    describe,
    per_month,
    profile,
    solve_tiny,
)

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

REGIONS = (FRA, DUB, IAD, LAM_FRA, LAM_IAD, ZRH)
SOURCES = ("berlin", "paris", "new-york", "zurich")
EU_SOURCES = {"berlin", "paris"}


@dataclass
class OfferSpec:
    region: str
    price_usd: int
    gpus: int
    gpu: object
    spot: bool
    availability: int | None
    stale: bool
    risk: float | None


@st.composite
def offer_specs(draw: st.DrawFn, regions: list[str]) -> OfferSpec:
    return OfferSpec(
        region=draw(st.sampled_from(regions)),
        price_usd=draw(st.integers(1, 40)),
        gpus=draw(st.sampled_from([1, 2, 4, 8])),
        gpu=draw(st.sampled_from([H100, H100, MI300X])),
        spot=draw(st.booleans()),
        availability=draw(st.one_of(st.none(), st.none(), st.integers(0, 4))),
        stale=draw(st.integers(0, 9)) == 9,
        risk=draw(st.sampled_from([None, 0.0, 0.25, 0.5])),
    )


def _add_offer(tiny: TinyProblem, spec: OfferSpec, index: int) -> str:
    return tiny.offer(
        spec.region,
        spec.price_usd,
        gpus=spec.gpus,
        gpu=spec.gpu,  # type: ignore[arg-type]
        option=SPOT if spec.spot else ON_DEMAND,
        availability=spec.availability,
        instance_type=f"{spec.gpu}-{spec.gpus}x-{index}".lower(),
        flags=[OfferFlag.STALE] if spec.stale else [],
        risk=spec.risk if spec.spot else None,
    )


@dataclass
class Scenario:
    tiny: TinyProblem
    regions: list[str]
    offers: list[OfferSpec]
    extra: OfferSpec
    """An offer to add for property (iii)."""
    committed: int = 0
    """Instances of the first offer already bought (a commitment), 0 for none."""

    def problem(self, *, with_extra: bool = False) -> Problem:
        tiny = self.tiny
        keep = list(tiny.offers)
        risks = dict(tiny.spot_risk)
        commitments = list(tiny.commitments)
        try:
            keys = [_add_offer(tiny, spec, i) for i, spec in enumerate(self.offers)]
            if with_extra:
                _add_offer(tiny, self.extra, len(self.offers))
            if self.committed:
                tiny.commit(keys[0], self.committed)
            return tiny.build()
        finally:
            tiny.offers[:] = keep
            tiny.spot_risk.clear()
            tiny.spot_risk.update(risks)
            tiny.commitments[:] = commitments


BACKBONE = OfferSpec(
    region="", price_usd=30, gpus=8, gpu=H100, spot=False, availability=None, stale=False, risk=None
)
"""An 8-GPU H100 on-demand offer without limits: most problems get one, so most have a plan."""


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=2, max_size=4, unique=True))
    tiny = TinyProblem(utilisation=draw(st.sampled_from([0.8, 1.0])))
    sources = draw(st.lists(st.sampled_from(SOURCES), min_size=1, max_size=3, unique=True))
    for name in sources:
        rtt = {region: draw(st.integers(5, 150)) for region in regions}
        eu_only = name in EU_SOURCES and draw(st.integers(0, 2)) == 2
        tiny.source(name, rtt_ms=rtt, residency=["EU"] if eu_only else None)
    redundancy = st.sampled_from([Redundancy.NONE] * 4 + [Redundancy.REGION, Redundancy.PROVIDER])
    for m in range(draw(st.integers(1, 2))):
        gpu_types = [H100, MI300X] if draw(st.booleans()) else [draw(st.sampled_from([H100, H100, MI300X]))]
        profiles = [
            profile(
                gpu,
                gpus=draw(st.sampled_from([1, 1, 2, 4, 8, 16])),
                tokens_per_s=draw(st.integers(5, 30)) * 100,
                service_ms=draw(st.integers(50, 250)),
            )
            for gpu in gpu_types
        ]
        tiny.model(
            f"model-{m}",
            team=f"team-{m}",
            slo_ms=draw(st.integers(250, 700)),
            profiles=profiles,
            redundancy=draw(redundancy),
            share=draw(st.sampled_from([0.5, 1.0])),
            max_spot_share=draw(st.sampled_from([0.0, 0.3, 1.0])),
        )
        served = draw(st.lists(st.sampled_from(sources), min_size=1, max_size=len(sources), unique=True))
        for name in served:
            tiny.demand(f"model-{m}", name, draw(st.integers(1, 40)) * 100)
    if draw(st.integers(0, 5)) == 5:
        tiny.budget(per_month(draw(st.integers(10, 300))))
    offers = draw(st.lists(offer_specs(regions), min_size=1, max_size=5))
    if draw(st.integers(0, 4)) < 4:
        offers.insert(0, OfferSpec(**{**BACKBONE.__dict__, "region": draw(st.sampled_from(regions))}))
    elif len(offers) < 2:
        offers.append(draw(offer_specs(regions)))
    committed = draw(st.sampled_from([0, 0, 0, 1, 2]))
    return Scenario(
        tiny=tiny, regions=regions, offers=offers, extra=draw(offer_specs(regions)), committed=committed
    )


# ------------------------------------------------------------------------- independent eligibility


def _fits(gpus_per_replica: int, gpus_per_instance: int) -> bool:
    """The packing rule: inside one instance, or spanning whole instances of >= 8 GPUs that divide it."""
    if gpus_per_replica <= gpus_per_instance:
        return True
    return gpus_per_instance >= 8 and gpus_per_replica % gpus_per_instance == 0


def _eligible_offers(problem: Problem, model_name: str, source_name: str, *, spot: bool) -> list[str]:
    """Offers that could serve this demand by the per-demand rules alone (no availability, budgets,
    redundancy): plannable, a planned purchase option, a fitting profile, residency, latency SLO.
    ``spot``: whether spot offers count (they do when the model's spot cap is above 0)."""
    model = next(m for m in problem.models if m.name == model_name)
    source = next(s for s in problem.sources if s.name == source_name)
    regions = {r.key: r for r in problem.regions}
    rtt = {(m.src, m.dst): m.rtt_ms for m in problem.rtt}
    out = []
    for offer in problem.offers:
        if not offer.plannable or offer.purchase_option not in PARAMS.purchase_options:
            continue
        if offer.purchase_option is SPOT and not spot:
            continue
        found = model.profile_for(offer.gpu_type)
        if found is None or not _fits(found.gpus_per_replica, offer.gpus_per_instance):
            continue
        region = regions[offer.region_key]
        if source.residency is not None and not (source.residency & region.jurisdictions):
            continue
        if rtt[(source.anchor_region, region.key)] + found.service_latency_ms > model.latency_slo_ms:
            continue
        out.append(offer.key)
    return out


def _has_coupling_rules(problem: Problem) -> bool:
    return (
        bool(problem.policy.budgets)
        or any(o.availability is not None for o in problem.offers)
        or any(m.redundancy is not Redundancy.NONE for m in problem.models)
        or any(0.0 < m.max_spot_share < 1.0 for m in problem.models)
    )


# -------------------------------------------------------------------------------------- properties


def _check_returned_plan(problem: Problem, result: SolveResult) -> None:
    text = describe(result)
    if result.plan is None:
        assert result.cost_micro_usd_per_hour is None, text
        return
    # (i) the plan keeps every rule, and its cost is the checker's costing of it
    assert validate(problem, result.plan, purchase_options=PARAMS.purchase_options) == [], text
    assert result.violations == (), text
    assert result.cost_micro_usd_per_hour == plan_cost(problem, result.plan), text
    # (ii) the cost is never below the bound
    assert result.lower_bound_micro_usd_per_hour is not None, text
    assert result.objective_micro_usd_per_hour is not None, text
    assert result.lower_bound_micro_usd_per_hour <= result.objective_micro_usd_per_hour, text
    assert result.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE), text


@PROPERTY_SETTINGS
@given(scenarios())
def test_plans_keep_every_rule_and_cost_at_least_the_bound(scenario: Scenario) -> None:
    problem = scenario.problem()
    result = solve_tiny(problem, PARAMS)
    event(f"status {result.status.value}")
    _check_returned_plan(problem, result)

    # (iv) infeasibility is explained, detected where a demand has no eligible offer, and not claimed
    # where nothing couples the demands and each has one.
    text = describe(result)
    if result.status is SolveStatus.INFEASIBLE:
        assert result.explanations, text
    stranded = [
        (d.model, d.source)
        for d in problem.demand
        if not _eligible_offers(
            problem,
            d.model,
            d.source,
            spot=next(m for m in problem.models if m.name == d.model).max_spot_share > 0,
        )
    ]
    if stranded:
        assert result.status is SolveStatus.INFEASIBLE, text
        told = " ".join(e.text for e in result.explanations)
        for model, source in stranded:
            assert model in told and source in told, text
    elif not _has_coupling_rules(problem):
        assert result.plan is not None, text


@settings(PROPERTY_SETTINGS, max_examples=40)  # two solves each
@given(scenarios())
def test_adding_an_offer_never_raises_the_optimal_cost(scenario: Scenario) -> None:
    before_problem = scenario.problem()
    after_problem = scenario.problem(with_extra=True)
    before = solve_tiny(before_problem, PARAMS)
    after = solve_tiny(after_problem, PARAMS)
    _check_returned_plan(before_problem, before)
    _check_returned_plan(after_problem, after)
    event(f"status {before.status.value} -> {after.status.value}")
    text = f"before:\n{describe(before)}\nafter (with {scenario.extra}):\n{describe(after)}"
    # Every plan of the smaller problem is a plan of the larger one.
    if before.plan is not None:
        assert after.status is not SolveStatus.INFEASIBLE, text
    # Optimal within the gap g: cost_after <= OPT_after / (1 - g) <= OPT_before / (1 - g)
    # <= cost_before / (1 - g).
    if before.plan is not None and after.status is SolveStatus.OPTIMAL:
        assert after.cost_micro_usd_per_hour is not None and before.cost_micro_usd_per_hour is not None
        limit = before.cost_micro_usd_per_hour / (1 - PARAMS.relative_gap)
        assert after.cost_micro_usd_per_hour <= limit + 1, text


@settings(PROPERTY_SETTINGS)
@given(scenarios())
def test_no_plan_means_the_time_limit_ran_out(scenario: Scenario) -> None:
    result = solve_tiny(scenario.problem(), PARAMS)
    if result.status is SolveStatus.NO_PLAN:
        # Not a speed assertion: a solve that gives up early cannot blame its time limit.
        assert result.wall_time_s >= 0.5 * PARAMS.time_limit_s, describe(result)


@settings(PROPERTY_SETTINGS, max_examples=20)  # two solves each
@given(scenarios())
def test_deterministic_solves_repeat_exactly(scenario: Scenario) -> None:
    problem = scenario.problem()
    first, second = solve_tiny(problem, PARAMS), solve_tiny(problem, PARAMS)
    assert PARAMS.deterministic
    assert (
        first.status,
        first.plan,
        first.cost_micro_usd_per_hour,
        first.lower_bound_micro_usd_per_hour,
    ) == (
        second.status,
        second.plan,
        second.cost_micro_usd_per_hour,
        second.lower_bound_micro_usd_per_hour,
    ), f"first:\n{describe(first)}\nsecond:\n{describe(second)}"


@PROPERTY_SETTINGS
@given(scenarios())
def test_the_whole_mip_beside_the_search_keeps_plans_above_the_bound(scenario: Scenario) -> None:
    # (vi): the path of problems a little too large for the whole MIP before the search.
    problem = scenario.problem()
    tuning = SolverTuning(exact_max_replica_vars=0, whole_min_s=0.1)
    params = SolveParams(time_limit_s=2, seed=0, workers=2, explain=False, tuning=tuning)
    result = solve_tiny(problem, params)
    event(f"status {result.status.value}; bound from {result.stats.get('bound_from')}")
    _check_returned_plan(problem, result)
