"""Deterministic benchmark scenarios generated from the shipped catalog (docs/benchmarks.md).

A scenario is the workload side of a planning problem (models with estimated profiles, demand sources,
demand, policy) plus an availability figure for every offer of the shipped catalog it plans on. It is
plain data: ``Scenario.to_document()`` gives a JSON-ready mapping, and ``Scenario.problem()`` the
``solver.problem.Problem`` the solver and the baselines run on. The same name and seed always give the
same scenario (Python's ``random.Random`` is seeded; nothing depends on the clock, hashing order or the
environment).

Sizes: S (8 models, 8 sources, seed 1), M (50, 20, seed 2), L (200, 30, seed 3), XL (500, 40, seed 4),
M-dense (50, 25, seed 6: each model on more sources, about 700 demand pairs, half the stock: see
``DENSITIES``); ``scaled(n_models, seed)`` for the scaling curve.

How a scenario is drawn
-----------------------
1. Sources: ``n_sources`` metros of ``METROS`` (42 world metros, each with its location, country,
   residency rule and, where one is in the same metro, an anchor AWS or Azure region whose measured
   round trips stand for the users'), drawn without replacement with the table's weights.
2. Models: an archetype of ``ARCHETYPES`` per model, drawn with the archetypes' shares; profiles from
   ``solver.profiles.estimate_profiles`` (the rule of docs/sample_fleet.md); the SLO is the archetype's
   times a uniform factor in [0.9, 1.3], rounded to 50 ms; a team from ``TEAMS``; redundancy: region
   60% (share 1.0, or 0.5 for one in three), provider 15% (share 0.5 or 1.0), none 25%; a spot cap of
   0, 0.3 or 0.5 (0 for one model in three).
3. Demand: each model is served to 1 + floor(u^2 x 0.6 x n_sources) sources (u uniform: most models are
   regional, a few global; M-dense: 1 + floor(u^0.5 x 0.85 x n_sources), most models wide), drawn
   with the metros' weights, in output tokens/s at the busy hour:
   the archetype's median x lognormal(0, 0.8) x sqrt(metro weight / mean weight), rounded to 100, at
   least 500. A (model, source) pair is kept only if on-demand offers of ``HOME_CLOUD`` (AWS, the
   hyperscaler with on-demand GPUs in the most regions) serve it within the SLO and residency rule, in
   two regions when the model wants region redundancy, and some other hyperscaler serves it when it
   wants provider redundancy; otherwise the model's next source is tried (a model no source passes is
   drawn again). This keeps baseline (a), which puts everything on one cloud, feasible, so that every
   ratio is defined.
4. Availability (public data has none; a stand-in): the scenario's GPU need G is the sum over demand of
   tokens/s / (0.8 x tokens/s per H100 GPU of the model). Hyperscaler on-demand offers are unlimited
   (quota is raised on request). Every other (provider, region, GPU type, purchase option) pool of
   plannable offers is sold out with probability 0.3, otherwise gets a lognormal(0, 1) weight; each kind
   of capacity has a total stock of ``AVAILABILITY_SHARE`` x max(G, 400) GPUs (neocloud on-demand 1.0,
   neocloud spot 0.1, hyperscaler spot 0.3, marketplace on-demand 0.05, spot 0.02), split over its pools
   by weight; each offer of a pool may buy an equal part of the pool's GPUs in whole instances. The cheap
   capacity is then about what the fleet needs before redundancy, spread over the world and over GPU
   types not every SLO can use: contended, but never the only way to serve anything.

Policy: target utilisation 0.8, churn penalty $5 per replica moved (no disruption cap, no minimum
saving: the stability benchmark measures what moves), no budgets (baselines (a) and (b) ignore budgets).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pricing.catalog import load_catalog
from pricing.inputs import OfferInputs, catalog_inputs
from solver.constraints.latency import service_ok
from solver.constraints.packing import replica_fit
from solver.domain import (
    ChurnPolicy,
    Demand,
    DemandSource,
    GpuType,
    Model,
    Offer,
    Plan,
    PlanningPolicy,
    ProviderKind,
    PurchaseOption,
    Redundancy,
)
from solver.network import RttTable
from solver.problem import Problem
from solver.profiles import estimate_profiles

# ------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Metro:
    name: str
    lat: float
    lon: float
    country: str
    weight: float
    """Relative share of users (the generator's assumption: large, well-connected markets weigh more)."""
    anchor: str | None = None
    """A catalog region in the same metro whose measured round trips stand for the users'."""
    residency: tuple[str, ...] | None = None


_EU = ("EU",)
METROS: tuple[Metro, ...] = (
    # North America
    Metro("ashburn", 39.04, -77.49, "US", 3.0, "aws/us-east-1"),
    Metro("new-york", 40.71, -74.01, "US", 3.0),
    Metro("washington-gov", 38.90, -77.04, "US", 1.0, "aws/us-east-1", ("US",)),
    Metro("columbus", 39.96, -83.00, "US", 1.0, "aws/us-east-2"),
    Metro("chicago", 41.88, -87.63, "US", 2.0, "azure/northcentralus"),
    Metro("dallas", 32.78, -96.80, "US", 2.0),
    Metro("san-antonio", 29.42, -98.49, "US", 1.0, "azure/southcentralus"),
    Metro("phoenix", 33.45, -112.07, "US", 1.0, "azure/westus3"),
    Metro("san-francisco", 37.77, -122.42, "US", 3.0, "aws/us-west-1"),
    Metro("los-angeles", 34.05, -118.24, "US", 2.0),
    Metro("portland", 45.52, -122.68, "US", 1.0, "aws/us-west-2"),
    Metro("toronto", 43.65, -79.38, "CA", 1.5, "azure/canadacentral"),
    Metro("montreal", 45.50, -73.57, "CA", 1.0, "aws/ca-central-1"),
    Metro("mexico-city", 19.43, -99.13, "MX", 1.0, "aws/mx-central-1"),
    # South America
    Metro("sao-paulo", -23.55, -46.63, "BR", 1.5, "aws/sa-east-1"),
    Metro("buenos-aires", -34.60, -58.38, "AR", 0.7),
    Metro("bogota", 4.71, -74.07, "CO", 0.5),
    # Europe
    Metro("london", 51.51, -0.13, "GB", 2.5, "aws/eu-west-2", ("GB", "EU")),
    Metro("dublin", 53.35, -6.26, "IE", 1.0, "aws/eu-west-1", _EU),
    Metro("paris", 48.86, 2.35, "FR", 2.0, "aws/eu-west-3", _EU),
    Metro("frankfurt", 50.11, 8.68, "DE", 2.0, "aws/eu-central-1", _EU),
    Metro("amsterdam", 52.37, 4.90, "NL", 1.5, "azure/westeurope", _EU),
    Metro("madrid", 40.42, -3.70, "ES", 1.0, "aws/eu-south-2", _EU),
    Metro("milan", 45.46, 9.19, "IT", 1.0, "aws/eu-south-1", _EU),
    Metro("stockholm", 59.33, 18.07, "SE", 0.7, "aws/eu-north-1", _EU),
    Metro("warsaw", 52.23, 21.01, "PL", 0.8, "azure/polandcentral", _EU),
    Metro("zurich", 47.38, 8.54, "CH", 0.6, "aws/eu-central-2", ("CH", "EU")),
    Metro("oslo", 59.91, 10.75, "NO", 0.4, "azure/norwayeast", ("EEA",)),
    # Middle East and Africa
    Metro("tel-aviv", 32.09, 34.78, "IL", 0.6, "aws/il-central-1"),
    Metro("dubai", 25.20, 55.27, "AE", 0.8, "aws/me-central-1"),
    Metro("johannesburg", -26.20, 28.05, "ZA", 0.6, "azure/southafricanorth"),
    Metro("lagos", 6.52, 3.38, "NG", 0.5),
    # Asia and Oceania
    Metro("mumbai", 19.08, 72.88, "IN", 2.0, "aws/ap-south-1"),
    Metro("hyderabad", 17.39, 78.49, "IN", 1.0, "aws/ap-south-2"),
    Metro("singapore", 1.35, 103.82, "SG", 1.5, "aws/ap-southeast-1"),
    Metro("jakarta", -6.21, 106.85, "ID", 1.0, "aws/ap-southeast-3"),
    Metro("hong-kong", 22.32, 114.17, "HK", 1.0, "aws/ap-east-1"),
    Metro("tokyo", 35.68, 139.69, "JP", 2.5, "aws/ap-northeast-1"),
    Metro("osaka", 34.69, 135.50, "JP", 1.0, "aws/ap-northeast-3"),
    Metro("seoul", 37.57, 126.98, "KR", 1.5, "aws/ap-northeast-2"),
    Metro("sydney", -33.87, 151.21, "AU", 1.5, "aws/ap-southeast-2"),
    Metro("melbourne", -37.81, 144.96, "AU", 0.8, "aws/ap-southeast-4"),
)


@dataclass(frozen=True)
class Archetype:
    name: str
    params_b: float
    active_params_b: float
    weights_gb: float
    moe: bool
    slo_ms: int
    median_tokens_per_s: int
    """Median busy-hour demand from one source."""
    share: float
    """Share of the scenario's models."""


ARCHETYPES: tuple[Archetype, ...] = (
    # Dense models in FP8 (weights in GB = parameters in billions).
    Archetype("dense-8b", 8, 8, 8, False, 400, 15_000, 0.22),  # Llama 3.1 8B
    Archetype("dense-13b", 13, 13, 13, False, 500, 10_000, 0.08),  # Llama 2 13B class
    Archetype("dense-32b", 32.8, 32.8, 33, False, 800, 7_000, 0.15),  # Qwen2.5 32B, Yi 34B
    Archetype("dense-70b", 70.6, 70.6, 71, False, 1500, 5_000, 0.20),  # Llama 3.1 70B, Qwen2.5 72B
    Archetype("dense-405b", 405, 405, 405, False, 3000, 2_000, 0.05),  # Llama 3.1 405B
    # Mixtures of experts: active parameters drive speed, total weights drive memory.
    Archetype("moe-deepseek-v3", 671, 37, 671, True, 2000, 6_000, 0.06),  # DeepSeek-V3, FP8
    Archetype("moe-gpt-oss-120b", 117, 5.1, 63, True, 600, 12_000, 0.14),  # gpt-oss-120b, MXFP4
    Archetype("moe-mixtral-8x7b", 46.7, 12.9, 47, True, 600, 8_000, 0.10),  # Mixtral 8x7B, FP8
)

TEAMS: tuple[str, ...] = ("chat", "search", "agents", "code", "research", "internal")


SOLD_OUT_PROBABILITY = 0.3
AVAILABILITY_SHARE: dict[tuple[ProviderKind, PurchaseOption], float] = {
    (ProviderKind.HYPERSCALER, PurchaseOption.SPOT): 0.3,
    (ProviderKind.NEOCLOUD, PurchaseOption.ON_DEMAND): 1.0,
    (ProviderKind.NEOCLOUD, PurchaseOption.SPOT): 0.1,
    (ProviderKind.MARKETPLACE, PurchaseOption.ON_DEMAND): 0.05,
    (ProviderKind.MARKETPLACE, PurchaseOption.SPOT): 0.02,
}
"""Total stock of each kind of capacity, as a share of the scenario's GPU need G. Hyperscaler
on-demand (and anything not listed) stays unlimited (availability None)."""
POOL_WEIGHT_SIGMA = 1.0
MIN_STOCK_BASE_GPUS = 400.0
"""Stock is scaled to max(G, this): a small fleet still finds some capacity outside the hyperscalers."""

TARGET_UTILISATION = 0.8
CHURN_PENALTY_MICRO_USD = 5_000_000
REFERENCE_GPU = GpuType.H100

SIZES: dict[str, tuple[int, int, int]] = {
    "S": (8, 8, 1),
    "M": (50, 20, 2),
    "L": (200, 30, 3),
    "XL": (500, 40, 4),
    "M-dense": (50, 25, 6),
}
"""Size -> (models, sources, seed)."""


@dataclass(frozen=True)
class Density:
    """How many sources each model is served to, and how much stock the limited offers have.

    Each model goes to 1 + floor(u ** exponent x spread x n_sources) sources (u uniform); the stock of
    every kind of limited capacity is multiplied by ``stock_factor``."""

    exponent: float = 2.0
    spread: float = 0.6
    stock_factor: float = 1.0


DENSITIES: dict[str, Density] = {"M-dense": Density(exponent=0.5, spread=0.85, stock_factor=0.5)}
"""Sizes drawn with another density than the default: M-dense has M's models on more sources (about
700 demand pairs instead of 220) and half the stock, so that cheap offers run out."""

CURVE_SOURCES: dict[int, int] = {10: 10, 25: 15, 50: 20, 100: 25, 200: 30, 400: 40}
"""Scaling curve: sources for each model count (others: interpolated, capped at 40)."""
CURVE_SEED = 5
HOME_CLOUD = "aws"
"""The hyperscaler with on-demand GPUs in the most regions of the shipped catalog (14): every demand pair
must be servable on it, so that baseline (a) is feasible."""
MAX_MODEL_DRAWS = 50


# ----------------------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    models: tuple[Model, ...]
    sources: tuple[DemandSource, ...]
    demand: tuple[Demand, ...]
    availability: dict[str, int]
    """Offer key -> instances one can get; offers not listed are unlimited."""
    policy: PlanningPolicy
    gpu_need: float
    """G: H100-equivalent GPUs the demand needs at target utilisation, before redundancy."""
    dropped_pairs: int = 0
    """Drawn (model, source) pairs replaced because the single-cloud baseline could not serve them."""
    stats: dict[str, Any] = field(default_factory=dict)

    def offers(self, inputs: OfferInputs | None = None) -> tuple[Offer, ...]:
        inputs = inputs or shipped_inputs()
        return tuple(
            offer.model_copy(update={"availability": self.availability[offer.key]})
            if offer.key in self.availability
            else offer
            for offer in inputs.offers
        )

    def problem(
        self,
        inputs: OfferInputs | None = None,
        *,
        offers: tuple[Offer, ...] | None = None,
        current_fleet: Plan | None = None,
    ) -> Problem:
        inputs = inputs or shipped_inputs()
        return Problem(
            regions=inputs.regions,
            offers=offers if offers is not None else self.offers(inputs),
            rtt=inputs.rtt,
            provider_kinds=inputs.provider_kinds,
            models=self.models,
            sources=self.sources,
            demand=self.demand,
            policy=self.policy,
            current_fleet=current_fleet,
        )

    def to_document(self) -> dict[str, Any]:
        """Plain data (JSON-ready): what a scenario file would hold, offers by reference to the catalog."""
        return {
            "name": self.name,
            "generator": {"module": "benchmarks.scenarios", "seed": self.seed},
            "models": [model.model_dump(mode="json", exclude_defaults=True) for model in self.models],
            "sources": [source.model_dump(mode="json", exclude_defaults=True) for source in self.sources],
            "demand": [demand.model_dump(mode="json") for demand in self.demand],
            "policy": self.policy.model_dump(mode="json"),
            "offers": {"catalog": "shipped", "availability": dict(sorted(self.availability.items()))},
        }


@cache
def shipped_inputs() -> OfferInputs:
    return catalog_inputs(load_catalog())


def size(name: str) -> Scenario:
    n_models, n_sources, seed = SIZES[name]
    return generate(
        name, n_models=n_models, n_sources=n_sources, seed=seed, density=DENSITIES.get(name, Density())
    )


def scaled(n_models: int, seed: int = CURVE_SEED) -> Scenario:
    return generate(f"curve-{n_models}", n_models=n_models, n_sources=curve_sources(n_models), seed=seed)


def curve_sources(n_models: int) -> int:
    if n_models in CURVE_SOURCES:
        return CURVE_SOURCES[n_models]
    return max(8, min(40, round(8 + 4 * math.log2(max(1, n_models) / 5))))


def generate(
    name: str,
    *,
    n_models: int,
    n_sources: int,
    seed: int,
    inputs: OfferInputs | None = None,
    density: Density | None = None,
) -> Scenario:
    if not 1 <= n_sources <= len(METROS):
        raise ValueError(f"n_sources must be within 1..{len(METROS)}, got {n_sources}")
    if n_models < 1:
        raise ValueError(f"n_models must be positive, got {n_models}")
    inputs = inputs or shipped_inputs()
    density = density or Density()
    rng = random.Random(f"gpuplan-benchmark/{seed}/{n_models}/{n_sources}")
    metros = _weighted_sample(rng, list(METROS), [m.weight for m in METROS], n_sources)
    sources = tuple(_source(metro) for metro in metros)
    coverage = _Coverage(sources, inputs)
    mean_weight = sum(m.weight for m in metros) / len(metros)
    models: list[Model] = []
    demand: list[Demand] = []
    dropped = 0
    for i in range(n_models):
        for _ in range(MAX_MODEL_DRAWS):
            model = _model(rng, i)
            servable = {j for j in range(len(sources)) if coverage.servable(model, j)}
            if servable:
                break
        else:
            raise RuntimeError(f"no source can be served for model {i} after {MAX_MODEL_DRAWS} draws")
        models.append(model)
        archetype = _archetype_named(model.name)
        wanted = 1 + math.floor(rng.random() ** density.exponent * density.spread * n_sources)
        order = _weighted_sample(rng, list(range(len(metros))), [m.weight for m in metros], len(metros))
        chosen = [j for j in order if j in servable][:wanted]
        dropped += sum(1 for j in order[:wanted] if j not in servable)
        for j in sorted(chosen):
            size_factor = math.exp(rng.gauss(0.0, 0.8)) * math.sqrt(metros[j].weight / mean_weight)
            tokens = max(500, round(archetype.median_tokens_per_s * size_factor, -2))
            demand.append(Demand(model=model.name, source=sources[j].name, tokens_per_s=int(tokens)))
    need = _gpu_need(models, demand)
    availability = _availability(rng, inputs, need, density.stock_factor)
    policy = PlanningPolicy(
        target_utilisation=TARGET_UTILISATION,
        churn=ChurnPolicy(penalty_micro_usd_per_replica_move=CHURN_PENALTY_MICRO_USD),
    )
    return Scenario(
        name=name,
        seed=seed,
        models=tuple(models),
        sources=sources,
        demand=tuple(demand),
        availability=availability,
        policy=policy,
        gpu_need=need,
        dropped_pairs=dropped,
        stats={"pairs": len(demand), "tokens_per_s": sum(d.tokens_per_s for d in demand)},
    )


# ------------------------------------------------------------------------------------------ helpers


def _weighted_sample(rng: random.Random, items: list[Any], weights: list[float], k: int) -> list[Any]:
    """k items without replacement, each draw proportional to weight (Efraimidis-Spirakis keys)."""
    keyed = sorted(((rng.random() ** (1.0 / w), i) for i, w in enumerate(weights)), reverse=True)
    return [items[i] for _, i in keyed[:k]]


def _source(metro: Metro) -> DemandSource:
    return DemandSource(
        name=metro.name,
        lat=metro.lat,
        lon=metro.lon,
        country=metro.country,
        residency=frozenset(metro.residency) if metro.residency else None,
        anchor_region=metro.anchor,
    )


def _archetype_named(model_name: str) -> Archetype:
    prefix = model_name.rsplit("-", 1)[0]
    return next(a for a in ARCHETYPES if a.name == prefix)


def _model(rng: random.Random, i: int) -> Model:
    archetype = rng.choices(ARCHETYPES, weights=[a.share for a in ARCHETYPES])[0]
    slo = int(round(archetype.slo_ms * rng.uniform(0.9, 1.3) / 50.0) * 50)
    draw = rng.random()
    if draw < 0.60:
        redundancy, share = Redundancy.REGION, (0.5 if rng.random() < 1 / 3 else 1.0)
    elif draw < 0.75:
        redundancy, share = Redundancy.PROVIDER, rng.choice((0.5, 1.0))
    else:
        redundancy, share = Redundancy.NONE, 1.0
    spot_cap = rng.choice((0.0, 0.3, 0.5))
    return Model(
        name=f"{archetype.name}-{i:03d}",
        team=rng.choice(TEAMS),
        params_b=archetype.params_b,
        latency_slo_ms=slo,
        profiles=estimate_profiles(
            active_params_b=archetype.active_params_b,
            weights_gb=archetype.weights_gb,
            moe=archetype.moe,
            latency_slo_ms=slo,
        ),
        redundancy=redundancy,
        redundancy_share=share,
        max_spot_share=spot_cap,
    )


class _Coverage:
    """Which sources the single-cloud baseline can serve a model from: on-demand offers of
    ``HOME_CLOUD`` within the SLO and residency rule that the model fits (in two regions for region
    redundancy), and another hyperscaler's for provider redundancy. Same rules as ``solver.index``."""

    def __init__(self, sources: tuple[DemandSource, ...], inputs: OfferInputs) -> None:
        self.sources = sources
        regions = {region.key: region for region in inputs.regions}
        table = RttTable(inputs.rtt)
        hyperscalers = {p for p, kind in inputs.provider_kinds.items() if kind is ProviderKind.HYPERSCALER}
        self.offers = sorted(
            {
                (offer.provider, offer.region_key, offer.gpu_type, offer.gpus_per_instance)
                for offer in inputs.offers
                if offer.plannable
                and offer.purchase_option is PurchaseOption.ON_DEMAND
                and offer.provider in hyperscalers
            },
            key=str,
        )
        self.allowed = {
            (j, key): source.allows(regions[key]) for j, source in enumerate(sources) for key in regions
        }
        self.rtt = {
            (j, key): table.rtt_ms(source, regions[key])
            for j, source in enumerate(sources)
            for key in {o[1] for o in self.offers}
        }

    def servable(self, model: Model, j: int) -> bool:
        clouds: dict[str, set[str]] = {}
        for provider, region, gpu_type, gpus in self.offers:
            profile = model.profile_for(gpu_type)
            if profile is None or not replica_fit(profile.gpus_per_replica, gpus):
                continue
            if self.allowed[(j, region)] and service_ok(self.rtt[(j, region)], profile, model):
                clouds.setdefault(provider, set()).add(region)
        home = clouds.get(HOME_CLOUD, set())
        if not home:
            return False
        if model.redundancy is Redundancy.REGION and len(home) < 2:
            return False
        return not (model.redundancy is Redundancy.PROVIDER and not set(clouds) - {HOME_CLOUD})


def _gpu_need(models: list[Model] | tuple[Model, ...], demand: list[Demand]) -> float:
    per_gpu = {}
    for model in models:
        profile = model.profile_for(REFERENCE_GPU) or model.profiles[0]
        per_gpu[model.name] = profile.tokens_per_s_per_replica / profile.gpus_per_replica
    return sum(d.tokens_per_s / (TARGET_UTILISATION * per_gpu[d.model]) for d in demand)


def _availability(
    rng: random.Random, inputs: OfferInputs, need: float, stock_factor: float = 1.0
) -> dict[str, int]:
    """Stock per (provider, region, GPU type, purchase option) pool: the kind's share of G split over
    its pools by lognormal weights, 0 for sold-out pools; each offer of a pool gets an equal part of
    the pool's GPUs in whole instances."""
    pools: dict[tuple[str, str, str, str], list[Offer]] = {}
    for offer in inputs.offers:
        if offer.plannable:
            key = (offer.provider, offer.region, offer.gpu_type.value, offer.purchase_option.value)
            pools.setdefault(key, []).append(offer)
    weights: dict[tuple[str, str, str, str], float] = {}
    totals: dict[tuple[ProviderKind, PurchaseOption], float] = {}
    for key in sorted(pools):
        kind = inputs.provider_kinds.get(key[0], ProviderKind.NEOCLOUD)
        sold_out = rng.random() < SOLD_OUT_PROBABILITY
        weight = 0.0 if sold_out else math.exp(rng.gauss(0.0, POOL_WEIGHT_SIGMA))
        option = PurchaseOption(key[3])
        if (kind, option) in AVAILABILITY_SHARE:
            weights[key] = weight
            totals[(kind, option)] = totals.get((kind, option), 0.0) + weight
    availability: dict[str, int] = {}
    for key, weight in weights.items():
        kind = inputs.provider_kinds.get(key[0], ProviderKind.NEOCLOUD)
        option = PurchaseOption(key[3])
        total = totals[(kind, option)]
        base = max(need, MIN_STOCK_BASE_GPUS)
        share = AVAILABILITY_SHARE[(kind, option)] * stock_factor
        gpus = base * share * weight / total if total > 0 else 0.0
        offers = pools[key]
        for offer in offers:
            availability[offer.key] = int(gpus / len(offers) // offer.gpus_per_instance)
    return availability


# ------------------------------------------------------------------------------- perturbations


def perturb_prices(problem: Problem, *, seed: int, amplitude: float = 0.02) -> Problem:
    """Every offer's price times a seeded uniform factor in [1 - amplitude, 1 + amplitude]."""
    rng = random.Random(f"gpuplan-benchmark/prices/{seed}")
    offers = tuple(
        offer.model_copy(
            update={
                "price_micro_usd_per_hour": max(
                    1, round(offer.price_micro_usd_per_hour * (1 + rng.uniform(-amplitude, amplitude)))
                )
            }
        )
        for offer in problem.offers
    )
    return problem.model_copy(update={"offers": offers})


def spot_price_shock(problem: Problem, region_key: str, factor: float = 4.0) -> Problem:
    """Spot prices in one region times ``factor``."""
    offers = tuple(
        offer.model_copy(update={"price_micro_usd_per_hour": round(offer.price_micro_usd_per_hour * factor)})
        if offer.region_key == region_key and offer.purchase_option is PurchaseOption.SPOT
        else offer
        for offer in problem.offers
    )
    return problem.model_copy(update={"offers": offers})


def lose_region(problem: Problem, region_key: str) -> Problem:
    """No capacity left in one region: every offer there has availability 0."""
    offers = tuple(
        offer.model_copy(update={"availability": 0}) if offer.region_key == region_key else offer
        for offer in problem.offers
    )
    return problem.model_copy(update={"offers": offers})
