"""Domain types refuse impossible values and name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from solver.domain import (
    Budget,
    BudgetScope,
    DemandSource,
    GpuType,
    Model,
    ModelProfile,
    Offer,
    OfferFlag,
    Plan,
    PlanningPolicy,
    PurchaseOption,
    Region,
    offer_key,
)

OFFER = {
    "provider": "aws",
    "region": "us-east-1",
    "zone": "use1-az4",
    "instance_type": "p5.48xlarge",
    "gpu_type": "H100",
    "gpus_per_instance": 8,
    "purchase_option": "on_demand",
    "price_micro_usd_per_hour": 55_040_000,
}
PROFILE = {
    "gpu_type": "H100",
    "gpus_per_replica": 2,
    "tokens_per_s_per_replica": 3240,
    "service_latency_ms": 276,
}


def _error_fields(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(part) for part in error["loc"]) for error in exc.value.errors()}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price_micro_usd_per_hour": -1}, "price_micro_usd_per_hour"),
        ({"price_micro_usd_per_hour": 0}, "price_micro_usd_per_hour"),
        ({"gpus_per_instance": 0}, "gpus_per_instance"),
        ({"gpu_type": "A100"}, "gpu_type"),
        ({"purchase_option": "cheap"}, "purchase_option"),
        ({"provider": "AWS Cloud"}, "provider"),
        ({"availability": -3}, "availability"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_offer_rejects_impossible_values_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Offer(**{**OFFER, **change})
    assert field in _error_fields(exc)


def test_reserved_offer_needs_a_term_and_others_refuse_one() -> None:
    with pytest.raises(ValidationError, match="term"):
        Offer(**{**OFFER, "purchase_option": "reserved"})
    with pytest.raises(ValidationError, match="only reserved offers have a term"):
        Offer(**{**OFFER, "term": "1y"})
    reserved = Offer(**{**OFFER, "purchase_option": "reserved", "term": "3y", "upfront": "all_upfront"})
    assert reserved.key == "aws/us-east-1/use1-az4/p5.48xlarge/reserved:3y:all_upfront"


def test_offer_key_and_derived_values() -> None:
    offer = Offer(**OFFER)
    assert offer.key == "aws/us-east-1/use1-az4/p5.48xlarge/on_demand"
    assert offer.region_key == "aws/us-east-1"
    assert offer.price_micro_usd_per_gpu_hour == 6_880_000
    assert offer_key("lambda", "us-east-1", "", "gpu_8x_h100_sxm5", PurchaseOption.SPOT).split("/")[2] == "-"


def test_offer_is_immutable_and_flags_exclude_it_from_planning() -> None:
    offer = Offer(**OFFER)
    with pytest.raises(ValidationError):
        offer.price_micro_usd_per_hour = 1  # type: ignore[misc]
    assert offer.plannable
    assert not Offer(**OFFER, flags=frozenset({OfferFlag.SPOT_NOT_DISCOUNTED})).plannable
    assert Offer(**OFFER, flags=frozenset({OfferFlag.RELABELLED})).plannable


@pytest.mark.parametrize(("lat", "lon", "field"), [(91, 0, "lat"), (-90.5, 0, "lat"), (0, 180.1, "lon")])
def test_region_rejects_coordinates_out_of_range(lat: float, lon: float, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Region(provider="aws", code="x", country="DE", continent="EU", lat=lat, lon=lon)
    assert _error_fields(exc) == {field}


def test_region_country_code_and_derived_jurisdictions() -> None:
    with pytest.raises(ValidationError) as exc:
        Region(provider="aws", code="x", country="Germany", continent="EU", lat=0, lon=0)
    assert _error_fields(exc) == {"country"}
    frankfurt = Region(provider="aws", code="eu-central-1", country="DE", continent="EU", lat=50.1, lon=8.7)
    assert frankfurt.jurisdictions == {"DE", "EU", "EEA"}
    oslo = Region(provider="x", code="no", country="NO", continent="EU", lat=59.9, lon=10.7)
    assert oslo.jurisdictions == {"NO", "EEA"}


def test_profile_replica_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValidationError, match="power of two") as exc:
        ModelProfile(**{**PROFILE, "gpus_per_replica": 6})
    assert _error_fields(exc) == {"gpus_per_replica"}
    with pytest.raises(ValidationError) as exc:
        ModelProfile(**{**PROFILE, "tokens_per_s_per_replica": 0})
    assert _error_fields(exc) == {"tokens_per_s_per_replica"}


def test_model_needs_profiles_one_per_gpu_type() -> None:
    base = {"name": "m", "team": "chat", "latency_slo_ms": 500}
    with pytest.raises(ValidationError) as exc:
        Model(**base, profiles=())
    assert _error_fields(exc) == {"profiles"}
    with pytest.raises(ValidationError, match="two profiles for GPU type H100"):
        Model(**base, profiles=(PROFILE, PROFILE))
    with pytest.raises(ValidationError) as exc:
        Model(**base, profiles=(PROFILE,), max_spot_share=1.5)
    assert _error_fields(exc) == {"max_spot_share"}
    model = Model(**base, profiles=(PROFILE,))
    assert model.profile_for(GpuType.H100) is not None
    assert model.profile_for(GpuType.MI300X) is None


def test_demand_source_residency() -> None:
    with pytest.raises(ValidationError, match="allows nowhere"):
        DemandSource(name="eu", lat=50, lon=8, country="DE", residency=frozenset())
    eu_users = DemandSource(name="eu", lat=50, lon=8, country="DE", residency=frozenset({"EU"}))
    paris = Region(provider="aws", code="eu-west-3", country="FR", continent="EU", lat=48.9, lon=2.3)
    london = Region(provider="aws", code="eu-west-2", country="GB", continent="EU", lat=51.5, lon=-0.1)
    assert eu_users.allows(paris)
    assert not eu_users.allows(london)
    assert DemandSource(name="any", lat=0, lon=0, country="US").allows(london)


def test_budgets_scope_and_team() -> None:
    with pytest.raises(ValidationError, match="needs a team"):
        Budget(scope=BudgetScope.TEAM, limit_micro_usd_per_month=1)
    with pytest.raises(ValidationError, match="has no team"):
        Budget(scope=BudgetScope.GLOBAL, team="chat", limit_micro_usd_per_month=1)
    with pytest.raises(ValidationError) as exc:
        Budget(scope=BudgetScope.GLOBAL, limit_micro_usd_per_month=-5)
    assert _error_fields(exc) == {"limit_micro_usd_per_month"}
    one = Budget(scope=BudgetScope.GLOBAL, limit_micro_usd_per_month=1)
    with pytest.raises(ValidationError, match="two budgets for global"):
        PlanningPolicy(budgets=(one, one))


def test_plan_shape_is_checked() -> None:
    placement = {"offer_key": "a/b/-/c/spot", "instances": 1, "replicas": [{"model": "m", "replicas": 2}]}
    route = {"model": "m", "source": "s", "region": "a/b", "share": 0.5}
    with pytest.raises(ValidationError, match="an offer appears twice"):
        Plan(placements=(placement, placement))
    with pytest.raises(ValidationError, match=r"sum to 0\.500000, not 1"):
        Plan(routes=(route,))
    with pytest.raises(ValidationError, match="appears twice"):
        Plan(routes=(route, route))
    with pytest.raises(ValidationError, match="a model appears twice on one offer"):
        Plan(placements=({**placement, "replicas": [{"model": "m", "replicas": 1}] * 2},))
    with pytest.raises(ValidationError) as exc:
        Plan(placements=({**placement, "instances": 0},))
    assert "placements.0.instances" in _error_fields(exc)
    plan = Plan(placements=(placement,), routes=(route, {**route, "region": "a/c"}))
    assert plan.replicas_by_offer() == {"a/b/-/c/spot": {"m": 2}}


def test_a_copy_with_other_fields_has_their_key_not_the_original_s() -> None:
    # Offers and regions cache their key; a copy that changes the fields it is made of must not keep it.
    offer = Offer(**OFFER)
    assert offer.key.endswith("/p5.48xlarge/on_demand")
    spot = offer.model_copy(update={"purchase_option": PurchaseOption.SPOT, "instance_type": "p5e.48xlarge"})
    assert spot.key == offer_key("aws", "us-east-1", "use1-az4", "p5e.48xlarge", PurchaseOption.SPOT)
    assert offer.key.endswith("/p5.48xlarge/on_demand")
    region = Region(
        provider="aws", code="eu-west-1", city="Dublin", country="IE", continent="EU", lat=53.3, lon=-6.3
    )
    assert region.key == "aws/eu-west-1"
    assert region.model_copy(update={"code": "eu-west-2"}).key == "aws/eu-west-2"
