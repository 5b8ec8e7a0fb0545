"""Baselines on tiny hand-built problems with exact expected costs; every plan passes the checker.

Geography: the users sit at (0, 0); regions "near" (0 km), "mid" (~500 km) and "far" (~1,000 km) are all
within the SLO. Instances have one H100 unless a test says otherwise; a replica carries 1,000 tokens/s
on one GPU; the policy's target utilisation is 0.8, so 1,600 tokens/s need two replicas in normal
operation, and two replicas (at 100%) after a loss.
"""

from __future__ import annotations

import pytest

from solver.baselines import (
    BaselineStatus,
    direct_mip,
    greedy_per_model,
    lp_bound,
    run_all,
    single_cloud_on_demand,
)
from solver.domain import (
    Demand,
    DemandSource,
    GpuType,
    Model,
    ModelProfile,
    Offer,
    ProviderKind,
    PurchaseOption,
    Redundancy,
    Region,
)
from solver.problem import Problem
from solver.validate import validate

USD = 1_000_000
KINDS = {"aws": ProviderKind.HYPERSCALER, "azure": ProviderKind.HYPERSCALER, "lambda": ProviderKind.NEOCLOUD}
LON = {"near": 0.0, "mid": 4.5, "far": 9.0}


def region(provider: str, code: str) -> Region:
    return Region(provider=provider, code=code, country="US", continent="NA", lat=0.0, lon=LON[code])


def offer(
    provider: str,
    code: str,
    usd: float,
    *,
    gpus: int = 1,
    option: PurchaseOption = PurchaseOption.ON_DEMAND,
    availability: int | None = None,
) -> Offer:
    return Offer(
        provider=provider,
        region=code,
        instance_type=f"h100x{gpus}",
        gpu_type=GpuType.H100,
        gpus_per_instance=gpus,
        purchase_option=option,
        price_micro_usd_per_hour=round(usd * USD),
        availability=availability,
    )


def model(name: str = "m", **changes: object) -> Model:
    fields: dict[str, object] = {
        "name": name,
        "team": "chat",
        "latency_slo_ms": 1000,
        "profiles": (
            ModelProfile(
                gpu_type=GpuType.H100,
                gpus_per_replica=1,
                tokens_per_s_per_replica=1000,
                service_latency_ms=100,
            ),
        ),
    }
    fields.update(changes)
    return Model(**fields)  # type: ignore[arg-type]


def problem(offers: list[Offer], models: list[Model], tokens: dict[str, int] | None = None) -> Problem:
    regions = {(o.provider, o.region) for o in offers}
    tokens = tokens or {m.name: 1600 for m in models}
    return Problem(
        regions=tuple(region(p, c) for p, c in sorted(regions)),
        offers=tuple(offers),
        models=tuple(models),
        sources=(DemandSource(name="users", lat=0.0, lon=0.0, country="US"),),
        demand=tuple(Demand(model=m.name, source="users", tokens_per_s=tokens[m.name]) for m in models),
        provider_kinds=KINDS,
    )


def instances(result: object) -> dict[str, int]:
    plan = result.plan  # type: ignore[attr-defined]
    return {p.offer_key.split("/")[1]: p.instances for p in plan.placements}


def assert_valid(p: Problem, result: object) -> None:
    assert result.plan is not None  # type: ignore[attr-defined]
    assert result.violations == ()  # type: ignore[attr-defined]
    assert validate(p, result.plan) == []  # type: ignore[attr-defined]


THREE_REGIONS = [offer("aws", "near", 10), offer("aws", "mid", 8), offer("aws", "far", 5)]


def test_single_cloud_serves_from_the_nearest_region_and_greedy_from_the_cheapest() -> None:
    p = problem(THREE_REGIONS, [model()])
    a = single_cloud_on_demand(p)
    assert a.status is BaselineStatus.FEASIBLE
    assert a.cost_micro_usd_per_hour == 20 * USD
    assert instances(a) == {"near": 2}
    assert_valid(p, a)
    b = greedy_per_model(p)
    assert b.status is BaselineStatus.FEASIBLE
    assert b.cost_micro_usd_per_hour == 10 * USD
    assert instances(b) == {"far": 2}
    assert_valid(p, b)


def test_region_redundancy_next_nearest_for_a_next_cheapest_for_b_and_the_mip_optimum() -> None:
    p = problem(THREE_REGIONS, [model(redundancy=Redundancy.REGION)])
    a = single_cloud_on_demand(p, "aws")
    assert a.cost_micro_usd_per_hour == (2 * 10 + 2 * 8) * USD
    assert instances(a) == {"near": 2, "mid": 2}
    assert_valid(p, a)
    b = greedy_per_model(p)
    assert b.cost_micro_usd_per_hour == (2 * 5 + 2 * 8) * USD
    assert instances(b) == {"far": 2, "mid": 2}
    assert_valid(p, b)
    # One replica in each region survives any loss with 2,000 tokens/s: $23/h is optimal.
    c = direct_mip(p, 20.0)
    assert c.status is BaselineStatus.OPTIMAL
    assert c.cost_micro_usd_per_hour == 23 * USD
    assert instances(c) == {"near": 1, "mid": 1, "far": 1}
    assert_valid(p, c)
    assert c.lower_bound_micro_usd_per_hour is not None
    assert c.lower_bound_micro_usd_per_hour <= c.cost_micro_usd_per_hour
    # LP: 0.8 replica in each region (any two sum to 1.6): 0.8 x $23.
    d = lp_bound(p)
    assert d.status is BaselineStatus.BOUND
    assert d.plan is None
    assert d.lower_bound_micro_usd_per_hour == pytest.approx(18.4 * USD, abs=2)


def test_provider_redundancy_on_one_cloud_adds_the_nearest_region_of_another_hyperscaler() -> None:
    p = problem([offer("aws", "near", 10), offer("azure", "mid", 9)], [model(redundancy=Redundancy.PROVIDER)])
    a = single_cloud_on_demand(p, "aws")
    assert a.cost_micro_usd_per_hour == (2 * 10 + 2 * 9) * USD
    assert {pl.offer_key.split("/")[0] for pl in a.plan.placements} == {"aws", "azure"}  # type: ignore[union-attr]
    assert_valid(p, a)


def test_without_a_provider_the_cheapest_cloud_is_chosen() -> None:
    p = problem([offer("aws", "near", 10), offer("azure", "mid", 8)], [model()])
    a = single_cloud_on_demand(p)
    assert a.stats["cloud"] == "azure"
    assert a.cost_micro_usd_per_hour == 16 * USD
    assert "aws: feasible $20/h" in a.note
    assert_valid(p, a)


def test_greedy_puts_on_spot_the_largest_share_the_cap_allows() -> None:
    spot = offer("aws", "near", 3, option=PurchaseOption.SPOT)
    p = problem([offer("aws", "near", 5), spot], [model(max_spot_share=0.5)])
    b = greedy_per_model(p)
    # Spot counts at 0.9 (hyperscaler default risk): 2 spot replicas (raw 2,000) and 2 on-demand.
    assert b.cost_micro_usd_per_hour == (2 * 3 + 2 * 5) * USD
    replicas = {pl.offer_key: pl.replicas[0].replicas for pl in b.plan.placements}  # type: ignore[union-attr]
    assert replicas[spot.key] == 2
    assert_valid(p, b)
    # The single-cloud baseline never uses spot.
    a = single_cloud_on_demand(p)
    assert a.cost_micro_usd_per_hour == 2 * 5 * USD
    assert_valid(p, a)


def test_whole_instances_per_model_without_packing_across_models() -> None:
    eight = offer("aws", "near", 16, gpus=8)
    models = [model("x"), model("y")]
    p = problem([eight], models, {"x": 400, "y": 400})
    b = greedy_per_model(p)
    assert b.cost_micro_usd_per_hour == 2 * 16 * USD
    assert instances(b) == {"near": 2}
    assert_valid(p, b)
    a = single_cloud_on_demand(p)
    assert a.cost_micro_usd_per_hour == 2 * 16 * USD
    # The MIP packs both models' replicas on one instance.
    c = direct_mip(p, 20.0)
    assert c.cost_micro_usd_per_hour == 16 * USD
    assert_valid(p, c)


def test_greedy_takes_scarce_cheap_capacity_in_model_order() -> None:
    cheap = offer("lambda", "mid", 2, availability=2)
    p = problem([cheap, offer("aws", "near", 10)], [model("first"), model("second")])
    b = greedy_per_model(p)
    assert b.cost_micro_usd_per_hour == (2 * 2 + 2 * 10) * USD
    by_model = {
        (pl.offer_key.split("/")[0], c.model)
        for pl in b.plan.placements  # type: ignore[union-attr]
        for c in pl.replicas
    }
    assert by_model == {("lambda", "first"), ("aws", "second")}
    assert_valid(p, b)


def test_single_cloud_reports_demand_it_cannot_serve() -> None:
    p = problem([offer("lambda", "near", 2)], [model()])
    a = single_cloud_on_demand(p)
    assert a.status is BaselineStatus.INFEASIBLE
    assert a.plan is None
    assert "No hyperscaler" in a.note
    far_only = problem([offer("aws", "far", 5)], [model(latency_slo_ms=110)])  # 22 ms + 100 ms > 110 ms
    a = single_cloud_on_demand(far_only, "aws")
    assert a.status is BaselineStatus.INFEASIBLE
    assert "no eligible aws region" in a.note


def test_direct_mip_and_lp_report_unservable_demand() -> None:
    p = problem([offer("aws", "far", 5)], [model(latency_slo_ms=110)])
    assert direct_mip(p, 5.0).status is BaselineStatus.INFEASIBLE
    assert lp_bound(p).status is BaselineStatus.INFEASIBLE


def test_run_all_runs_every_baseline_in_order_and_the_direct_mip_only_when_asked() -> None:
    # The three-region problem: (a) $20/h near, (b) $10/h far, (c) the optimum $10/h, (d) its LP bound.
    p = problem(THREE_REGIONS, [model()])
    runs = run_all(p, time_limit_s=5.0)
    assert [r.name for r in runs.results] == [
        "single-cloud on-demand",
        "greedy per model",
        "direct MIP (HiGHS)",
        "LP relaxation",
    ]
    a, b, c, d = runs.results
    assert (a.cost_micro_usd_per_hour, b.cost_micro_usd_per_hour, c.cost_micro_usd_per_hour) == (
        20 * USD,
        10 * USD,
        10 * USD,
    )
    assert d.status is BaselineStatus.BOUND and d.lower_bound_micro_usd_per_hour is not None
    assert d.lower_bound_micro_usd_per_hour <= 10 * USD
    assert runs.notes == ()
    fast = run_all(p, time_limit_s=5.0, include_direct_mip=False)
    assert [r.name for r in fast.results] == ["single-cloud on-demand", "greedy per model", "LP relaxation"]
    assert len(fast.notes) == 1 and "direct_mip skipped" in fast.notes[0]


def test_unservable_demand_is_refused_with_the_rule_that_excludes_it() -> None:
    # Far is 22 ms away and the replica's service takes 100 ms: a 110 ms SLO leaves no region.
    p = problem([offer("aws", "far", 5)], [model(latency_slo_ms=110)])
    for result in (direct_mip(p, 5.0), lp_bound(p)):
        assert result.status is BaselineStatus.INFEASIBLE and result.plan is None
        assert "m from users cannot be served" in result.note and "SLO" in result.note, result.note
