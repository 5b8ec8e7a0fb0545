"""Tiny placement problems for the planners' toolkit tests, with exact round trips.

One demand source ``eu`` in Frankfurt, anchored to a probe region whose measured round trips are:
acme/fra 5 ms, beta/ams 10 ms, acme/iad 90 ms. Models add 100 ms of service latency, so with an SLO of
200 ms every region is in reach, with 110 ms only Frankfurt and Amsterdam, below 105 ms none.
"""

from __future__ import annotations

from solver.domain import (
    Budget,
    BudgetScope,
    Continent,
    Demand,
    DemandSource,
    GpuType,
    Model,
    ModelProfile,
    Offer,
    PlanningPolicy,
    ProviderKind,
    PurchaseOption,
    Redundancy,
    Region,
)
from solver.problem import Problem, RttMeasurement
from solver.units import usd_to_micro

FRA = Region(
    provider="acme", code="fra", city="Frankfurt", country="DE", continent=Continent.EU, lat=50.11, lon=8.68
)
AMS = Region(
    provider="beta", code="ams", city="Amsterdam", country="NL", continent=Continent.EU, lat=52.37, lon=4.9
)
IAD = Region(
    provider="acme", code="iad", city="Ashburn", country="US", continent=Continent.NA, lat=39.04, lon=-77.49
)
PROBE = Region(provider="probe", code="eu", country="DE", continent=Continent.EU, lat=50.11, lon=8.68)
RTT_MS = {"acme/fra": 5.0, "beta/ams": 10.0, "acme/iad": 90.0}


def offer(region: Region, option: PurchaseOption, usd: str, *, gpus: int = 1, **extra: object) -> Offer:
    return Offer(
        provider=region.provider,
        region=region.code,
        instance_type=f"{gpus}xH100",
        gpu_type=GpuType.H100,
        gpus_per_instance=gpus,
        purchase_option=option,
        price_micro_usd_per_hour=usd_to_micro(usd),
        **extra,  # term, upfront or availability of a test offer
    )


def model(
    name: str, team: str, *, slo: int = 200, spot: float = 0.5, gpus: int = 1, tokens: int = 1000
) -> Model:
    return Model(
        name=name,
        team=team,
        latency_slo_ms=slo,
        max_spot_share=spot,
        redundancy=Redundancy.NONE,
        profiles=(
            ModelProfile(
                gpu_type=GpuType.H100,
                gpus_per_replica=gpus,
                tokens_per_s_per_replica=tokens,
                service_latency_ms=100,
            ),
        ),
    )


def tiny_problem() -> Problem:
    """Two models of two teams, three regions of two providers, on-demand and spot offers."""
    return Problem(
        regions=(FRA, AMS, IAD, PROBE),
        offers=(
            offer(FRA, PurchaseOption.ON_DEMAND, "4.00"),
            offer(AMS, PurchaseOption.ON_DEMAND, "3.00"),
            offer(IAD, PurchaseOption.ON_DEMAND, "2.00"),
            offer(AMS, PurchaseOption.SPOT, "1.50"),
            offer(IAD, PurchaseOption.SPOT, "1.00"),
        ),
        models=(model("chat", "chat"), model("big", "research", slo=300, tokens=800)),
        sources=(DemandSource(name="eu", lat=50.11, lon=8.68, country="DE", anchor_region="probe/eu"),),
        demand=(
            Demand(model="chat", source="eu", tokens_per_s=2000),
            Demand(model="big", source="eu", tokens_per_s=800),
        ),
        policy=PlanningPolicy(
            target_utilisation=1.0,
            budgets=(
                Budget(scope=BudgetScope.GLOBAL, limit_micro_usd_per_month=usd_to_micro("100000")),
                Budget(scope=BudgetScope.TEAM, team="chat", limit_micro_usd_per_month=usd_to_micro("10000")),
            ),
        ),
        rtt=tuple(RttMeasurement(src="probe/eu", dst=key, rtt_ms=ms) for key, ms in RTT_MS.items()),
        provider_kinds={"acme": ProviderKind.NEOCLOUD, "beta": ProviderKind.NEOCLOUD},
    )
