"""What-if changes: each does what it says, they compose, the base is never changed, bad names are named."""

from __future__ import annotations

import json

import pytest

from solver.domain import BudgetScope, PurchaseOption, Redundancy
from solver.problem import Problem
from solver.whatif import (
    BudgetChange,
    Change,
    DemandGrowth,
    NewOffer,
    PriceShock,
    ProviderLost,
    RedundancyChange,
    RegionLost,
    ResidencyChange,
    Restrict,
    SloChange,
    SpotCapChange,
    WhatIf,
    WhatIfError,
    apply_changes,
    parse_change,
)
from tests.planning_problems import tiny_problem


def prices(problem: Problem) -> dict[str, int]:
    return {o.key: o.price_micro_usd_per_hour for o in problem.offers}


def test_price_shock_scales_only_matching_offers() -> None:
    base = tiny_problem()
    shocked = PriceShock(factor=1.5, providers="acme", purchase_options=[PurchaseOption.ON_DEMAND]).apply(
        base
    )
    before, after = prices(base), prices(shocked)
    assert after["acme/fra/-/1xH100/on_demand"] == 6_000_000
    assert after["acme/iad/-/1xH100/on_demand"] == 3_000_000
    assert after["acme/iad/-/1xH100/spot"] == before["acme/iad/-/1xH100/spot"]
    assert after["beta/ams/-/1xH100/on_demand"] == before["beta/ams/-/1xH100/on_demand"]


def test_region_and_provider_lost_remove_their_offers() -> None:
    base = tiny_problem()
    no_iad = RegionLost(regions="acme/iad").apply(base)
    assert {o.region_key for o in no_iad.offers} == {"acme/fra", "beta/ams"}
    # A bare code names every provider's region of that code.
    assert RegionLost(regions="iad").apply(base).offers == no_iad.offers
    no_acme = ProviderLost(providers=["acme"]).apply(base)
    assert {o.provider for o in no_acme.offers} == {"beta"}


def test_demand_growth_slo_residency_redundancy_spot_budget() -> None:
    base = tiny_problem()
    grown = DemandGrowth(factor=1.25, models="chat").apply(base)
    assert {d.model: d.tokens_per_s for d in grown.demand} == {"chat": 2500, "big": 800}
    tighter = SloChange(factor=0.5).apply(base)
    assert [m.latency_slo_ms for m in tighter.models] == [100, 150]
    fixed = SloChange(latency_slo_ms=250, models="big").apply(base)
    assert [m.latency_slo_ms for m in fixed.models] == [200, 250]
    resident = ResidencyChange(allowed=["EU"]).apply(base)
    assert resident.sources[0].residency == frozenset({"EU"})
    anywhere = ResidencyChange(allowed=None).apply(resident)
    assert anywhere.sources[0].residency is None
    redundant = RedundancyChange(level=Redundancy.PROVIDER, share=0.5, models="chat").apply(base)
    assert (redundant.models[0].redundancy, redundant.models[0].redundancy_share) == (
        Redundancy.PROVIDER,
        0.5,
    )
    assert redundant.models[1].redundancy is Redundancy.NONE
    assert [m.max_spot_share for m in SpotCapChange(max_spot_share=0.0).apply(base).models] == [0.0, 0.0]
    budgets = BudgetChange(scope=BudgetScope.TEAM, team="chat", limit_usd_per_month="5000").apply(base)
    chat = [b for b in budgets.policy.budgets if b.team == "chat"]
    assert [b.limit_micro_usd_per_month for b in chat] == [5_000_000_000]
    removed = BudgetChange(scope=BudgetScope.GLOBAL).apply(base)
    assert [b.scope for b in removed.policy.budgets] == [BudgetScope.TEAM]


def test_new_offer_needs_a_known_region_or_brings_one() -> None:
    base = tiny_problem()
    quote = {
        "provider": "gamma",
        "region": "waw",
        "instance_type": "8xH100",
        "gpu_type": "H100",
        "gpus_per_instance": 8,
        "purchase_option": "on_demand",
        "price_usd_per_hour": "9.60",
    }
    with pytest.raises(WhatIfError, match="unknown region 'gamma/waw'"):
        NewOffer(offer=quote).apply(base)
    region = {
        "provider": "gamma",
        "code": "waw",
        "country": "PL",
        "continent": "EU",
        "lat": 52.23,
        "lon": 21.01,
    }
    added = NewOffer(offer=quote, region=region).apply(base)
    assert "gamma/waw/-/8xH100/on_demand" in prices(added)
    assert prices(added)["gamma/waw/-/8xH100/on_demand"] == 9_600_000
    with pytest.raises(WhatIfError, match="exists already"):
        NewOffer(offer=quote, region=region).apply(added)


def test_changes_compose_and_the_base_is_never_changed() -> None:
    base = tiny_problem()
    snapshot = base.model_dump_json()
    shock = PriceShock(factor=2.0, providers="beta")
    growth = DemandGrowth(factor=1.5)
    lost = RegionLost(regions="acme/fra")
    both = apply_changes(base, [shock, growth, lost])
    assert base.model_dump_json() == snapshot
    # Composition is application in order, and changes that touch different things commute.
    assert both == lost.apply(growth.apply(shock.apply(base)))
    assert both == apply_changes(base, [lost, growth, shock])
    # Undoing a change is applying the others to the same base.
    undone = apply_changes(base, [shock, lost])
    assert undone == apply_changes(apply_changes(base, [shock]), [lost])
    assert {d.tokens_per_s for d in undone.demand} == {d.tokens_per_s for d in base.demand}
    assert apply_changes(base, []) is base


def test_unknown_names_are_errors_that_name_them() -> None:
    base = tiny_problem()
    cases: list[tuple[Change, str]] = [
        (
            PriceShock(factor=1.1, providers="acmee"),
            "price_shock: unknown provider 'acmee' (known: acme, beta)",
        ),
        (RegionLost(regions="acme/mars"), "region_lost: unknown region 'acme/mars'"),
        (ProviderLost(providers="zeta"), "provider_lost: unknown provider 'zeta'"),
        (DemandGrowth(factor=2, models="gpt"), "demand_growth: unknown model 'gpt' (known: big, chat)"),
        (DemandGrowth(factor=2, sources="mars"), "demand_growth: unknown source 'mars' (known: eu)"),
        (SloChange(factor=0.9, models="gpt"), "slo: unknown model 'gpt'"),
        (BudgetChange(scope="team", team="ops", limit_usd_per_month=1), "budget: unknown team 'ops'"),
        (Restrict(models=("chat", "nope")), "restrict: unknown model 'nope'"),
    ]
    for change, message in cases:
        with pytest.raises(WhatIfError) as info:
            apply_changes(base, [DemandGrowth(factor=1.1), change])
        assert message in str(info.value)
        assert str(info.value).startswith("changes[1] ")


def test_changes_are_json_a_rest_client_can_send() -> None:
    whatif = WhatIf(
        name="stress",
        changes=[
            PriceShock(factor=1.2, gpu_types=["H100"]),
            RegionLost(regions=["acme/iad"]),
            BudgetChange(limit_usd_per_month="1500.50"),
        ],
    )
    document = json.loads(whatif.model_dump_json())
    assert [c["kind"] for c in document["changes"]] == ["price_shock", "region_lost", "budget"]
    assert WhatIf.model_validate(document) == whatif
    assert parse_change({"kind": "spot_cap", "max_spot_share": 0.25}) == SpotCapChange(max_spot_share=0.25)
    with pytest.raises(ValueError, match="factor"):
        parse_change({"kind": "price_shock", "factor": -1})
    with pytest.raises(ValueError, match="kind"):
        parse_change({"kind": "meteor", "factor": 2})
    with pytest.raises(ValueError, match="exactly one"):
        SloChange(latency_slo_ms=100, factor=0.5)


def test_restrict_keeps_part_of_the_fleet() -> None:
    base = tiny_problem()
    small = Restrict(models="chat", providers="beta").apply(base)
    assert [m.name for m in small.models] == ["chat"]
    assert [d.model for d in small.demand] == ["chat"]
    assert {o.provider for o in small.offers} == {"beta"}
