"""Benchmark scenarios: deterministic, sane, and feasible for the baselines."""

from __future__ import annotations

import json

import pytest

from benchmarks import scenarios
from solver.baselines import BaselineStatus, greedy_per_model, single_cloud_on_demand
from solver.domain import PurchaseOption, Redundancy
from solver.index import build_index
from solver.problem import SolveParams


@pytest.fixture(scope="module")
def small() -> scenarios.Scenario:
    return scenarios.size("S")


def test_same_seed_gives_the_same_scenario(small: scenarios.Scenario) -> None:
    again = scenarios.size("S")
    assert again.to_document() == small.to_document()
    assert again.problem() == small.problem()


def test_different_seeds_give_different_scenarios() -> None:
    one = scenarios.generate("x", n_models=6, n_sources=6, seed=11)
    two = scenarios.generate("x", n_models=6, n_sources=6, seed=12)
    assert one.to_document()["models"] != two.to_document()["models"]
    assert one.availability != two.availability


def test_sizes_have_the_documented_shape(small: scenarios.Scenario) -> None:
    assert (len(small.models), len(small.sources), small.seed) == (8, 8, 1)
    curve = scenarios.scaled(25)
    assert (len(curve.models), len(curve.sources)) == (25, 15)


def test_scenario_is_plain_data(small: scenarios.Scenario) -> None:
    document = small.to_document()
    assert json.loads(json.dumps(document)) == document
    assert document["generator"] == {"module": "benchmarks.scenarios", "seed": 1}
    assert set(document["offers"]["availability"]) <= {o.key for o in scenarios.shipped_inputs().offers}


def test_every_demand_has_an_eligible_pool_and_a_single_cloud_home(small: scenarios.Scenario) -> None:
    problem = small.problem()
    index = build_index(problem, SolveParams())
    for m, by_source in index.demand.items():
        for s in by_source:
            assert index.eligible[(m, s)], (index.models[m].name, index.sources[s])
    on_demand = build_index(problem, SolveParams(purchase_options=frozenset({PurchaseOption.ON_DEMAND})))
    for (m, s), pools in on_demand.eligible.items():
        aws = {pool[0] for pool in pools if on_demand.regions[pool[0]].provider == scenarios.HOME_CLOUD}
        needed = 2 if index.models[m].redundancy is Redundancy.REGION else 1
        assert len(aws) >= needed, (index.models[m].name, index.sources[s])


def test_availability_stand_in(small: scenarios.Scenario) -> None:
    offers = {offer.key: offer for offer in small.problem().offers}
    kinds = scenarios.shipped_inputs().provider_kinds
    for key, offer in offers.items():
        hyperscaler_on_demand = (
            kinds[offer.provider] == "hyperscaler" and offer.purchase_option is PurchaseOption.ON_DEMAND
        )
        if hyperscaler_on_demand:
            assert offer.availability is None, key
        elif offer.plannable and offer.purchase_option in (PurchaseOption.ON_DEMAND, PurchaseOption.SPOT):
            assert offer.availability is not None, key
    assert any(small.availability.values())


def test_baselines_are_feasible_on_s(small: scenarios.Scenario) -> None:
    problem = small.problem()
    for result in (single_cloud_on_demand(problem), greedy_per_model(problem)):
        assert result.status is BaselineStatus.FEASIBLE, result.note
        assert result.violations == ()
        assert result.cost_micro_usd_per_hour


def test_perturbations(small: scenarios.Scenario) -> None:
    problem = small.problem()
    noisy = scenarios.perturb_prices(problem, seed=3)
    assert noisy == scenarios.perturb_prices(problem, seed=3)
    for before, after in zip(problem.offers, noisy.offers, strict=True):
        assert before.key == after.key
        ratio = after.price_micro_usd_per_hour / before.price_micro_usd_per_hour
        assert 0.98 - 1e-6 <= ratio <= 1.02 + 1e-6
    region = "aws/us-east-1"
    lost = scenarios.lose_region(problem, region)
    assert all(o.availability == 0 for o in lost.offers if o.region_key == region)
    shocked = scenarios.spot_price_shock(problem, region, 4.0)
    for before, after in zip(problem.offers, shocked.offers, strict=True):
        factor = 4 if before.region_key == region and before.purchase_option is PurchaseOption.SPOT else 1
        assert after.price_micro_usd_per_hour == before.price_micro_usd_per_hour * factor


def test_the_dense_family_is_deterministic_and_dense() -> None:
    dense = scenarios.size("M-dense")
    again = scenarios.size("M-dense")
    assert again.to_document() == dense.to_document()
    assert (len(dense.models), len(dense.sources), dense.seed) == (50, 25, 6)
    # About 700 demand pairs (M has 220), and half the stock: scarcer per GPU needed than M's.
    assert 600 <= len(dense.demand) <= 800
    m = scenarios.size("M")
    assert len(m.demand) < len(dense.demand) / 2
    stock_per_need = sum(dense.availability.values()) / dense.gpu_need
    assert stock_per_need < sum(m.availability.values()) / m.gpu_need
    # The density is a parameter of the generator: the same seed at another density differs.
    sparse = scenarios.generate("M-dense", n_models=50, n_sources=25, seed=6)
    assert len(sparse.demand) < len(dense.demand)
