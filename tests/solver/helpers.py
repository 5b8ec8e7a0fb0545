"""A builder for tiny placement problems whose optimal plan can be worked out by hand.

The tests of ``tests/solver`` are written from the rules (issue 4, DESIGN.md "The placement problem"
and the docstrings of ``solver/constraints``), not from the solver's code, so every expected answer is
computed in a comment next to it. To keep that arithmetic exact the builder controls every input:

- Regions are real-looking (Frankfurt DE, Dublin IE, Virginia US, Zurich CH, ...), so residency uses
  real jurisdictions (DE and IE are in the EU; US and CH are not).
- Round trips are exact: each demand source gets a probe region of its own (provider ``probe``, at the
  source's location, with no offers) as its ``anchor_region``, and a measured round trip from that
  probe to every region the test names (``RttTable`` prefers measured pairs to the distance model).
  ``build`` refuses a problem where a region with offers has no round trip from some source.
- Money is given in whole or decimal USD per hour (``"2.5"``) and converted once with ``usd``.
- The target utilisation defaults to 1.0 so that capacity arithmetic is plain; tests of the
  utilisation rule set it explicitly.

Solves use ``PARAMS`` (5 s limit, seed 0, deterministic); each tiny problem solves well under a second.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import FrameType

from ortools.math_opt.python import mathopt

from solver.domain import (
    Budget,
    BudgetScope,
    ChurnPolicy,
    Commitment,
    Continent,
    Demand,
    DemandSource,
    GpuType,
    Model,
    ModelProfile,
    Offer,
    OfferFlag,
    Placement,
    Plan,
    PlanningPolicy,
    ProviderKind,
    PurchaseOption,
    Redundancy,
    Region,
    ReplicaCount,
    ReservedTerm,
    Route,
)
from solver.index import ProblemIndex
from solver.problem import Problem, RttMeasurement, SolveParams
from solver.result import SolveResult, SolveStatus
from solver.search import Search
from solver.solve import solve
from solver.units import HOURS_PER_MONTH, usd_to_micro
from solver.validate import validate

H100 = GpuType.H100
H200 = GpuType.H200
MI300X = GpuType.MI300X

ON_DEMAND = PurchaseOption.ON_DEMAND
SPOT = PurchaseOption.SPOT
RESERVED = PurchaseOption.RESERVED

PARAMS = SolveParams(time_limit_s=5, seed=0, deterministic=True, explain=False)
"""Plan-only solves: every expected answer in these tests is the plan, its cost and its status."""
EXPLAIN = SolveParams(time_limit_s=5, seed=0, deterministic=True, explain=True)
"""Solves whose diagnosis (explanations) the test reads."""

GRACE_S = 10.0
"""How long past its time limit a solve may run before ``solve_tiny`` calls it a hang."""


class SolveOverran(Exception):  # noqa: N818 - it names what happened
    """``solve`` ran far past its time limit (a hang, not a slow machine: see ``GRACE_S``)."""


def solve_tiny(problem: Problem, params: SolveParams = PARAMS, *, grace_s: float = GRACE_S) -> SolveResult:
    """``solve`` under a watchdog, so that a solve that never returns fails its test instead of hanging
    the suite. The watchdog is not a speed assertion: it fires only ``grace_s`` after the time limit."""

    def overran(signum: int, frame: FrameType | None) -> None:
        raise SolveOverran(f"solve ran past its {params.time_limit_s} s time limit + {grace_s} s")

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, params.time_limit_s + grace_s)
    try:
        return solve(problem, params)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Known defects, each recorded by the tests it breaks (strict: a fix makes them pass and fail the suite,
# so the mark is removed with the fix).

# Region keys used by the tests, with real-looking locations and countries.
FRA = "aws/eu-central-1"  # Frankfurt, DE (EU)
DUB = "aws/eu-west-1"  # Dublin, IE (EU)
IAD = "aws/us-east-1"  # N. Virginia, US
LAM_FRA = "lambda/europe-central-1"  # Frankfurt, DE (EU), another provider
LAM_IAD = "lambda/us-east-1"  # Virginia, US, another provider
ZRH = "gcp/europe-west6"  # Zurich, CH: in Europe, in neither the EU nor the EEA

REGION_CATALOG: dict[str, Region] = {
    region.key: region
    for region in (
        Region(
            provider="aws",
            code="eu-central-1",
            city="Frankfurt",
            country="DE",
            continent=Continent.EU,
            lat=50.11,
            lon=8.68,
        ),
        Region(
            provider="aws",
            code="eu-west-1",
            city="Dublin",
            country="IE",
            continent=Continent.EU,
            lat=53.35,
            lon=-6.26,
        ),
        Region(
            provider="aws",
            code="us-east-1",
            city="Ashburn",
            country="US",
            continent=Continent.NA,
            lat=39.04,
            lon=-77.49,
        ),
        Region(
            provider="lambda",
            code="europe-central-1",
            city="Frankfurt",
            country="DE",
            continent=Continent.EU,
            lat=50.11,
            lon=8.68,
        ),
        Region(
            provider="lambda",
            code="us-east-1",
            city="Ashburn",
            country="US",
            continent=Continent.NA,
            lat=39.04,
            lon=-77.49,
        ),
        Region(
            provider="gcp",
            code="europe-west6",
            city="Zurich",
            country="CH",
            continent=Continent.EU,
            lat=47.37,
            lon=8.54,
        ),
    )
}

# Where demand comes from: (country, lat, lon).
PLACES: dict[str, tuple[str, float, float]] = {
    "berlin": ("DE", 52.52, 13.40),
    "paris": ("FR", 48.86, 2.35),
    "new-york": ("US", 40.71, -74.01),
    "zurich": ("CH", 47.37, 8.54),
    "ashburn": ("US", 39.04, -77.49),  # exactly at the Virginia regions: 0 km for the distance model
}

PROVIDER_KINDS: dict[str, ProviderKind] = {
    "aws": ProviderKind.HYPERSCALER,
    "gcp": ProviderKind.HYPERSCALER,
    "lambda": ProviderKind.NEOCLOUD,
}


def usd(amount: str | int) -> int:
    """USD per hour (or month) to integer micro-USD: ``usd("2.5") == 2_500_000``."""
    return usd_to_micro(Decimal(str(amount)))


def per_month(amount_usd_per_hour: str | int) -> int:
    """A budget equal to this many USD per hour, in micro-USD per month (730 h)."""
    return usd(amount_usd_per_hour) * HOURS_PER_MONTH


def profile(
    gpu: GpuType = H100, *, gpus: int = 1, tokens_per_s: int = 1000, service_ms: int = 100
) -> ModelProfile:
    return ModelProfile(
        gpu_type=gpu,
        gpus_per_replica=gpus,
        tokens_per_s_per_replica=tokens_per_s,
        service_latency_ms=service_ms,
    )


@dataclass
class TinyProblem:
    """Collects the parts of a problem; ``build()`` makes the ``Problem``.

    Every adder returns the key or name of what it added, so tests can refer to it.
    """

    utilisation: float = 1.0
    regions: dict[str, Region] = field(default_factory=dict)
    offers: list[Offer] = field(default_factory=list)
    models: list[Model] = field(default_factory=list)
    sources: list[DemandSource] = field(default_factory=list)
    demands: list[Demand] = field(default_factory=list)
    rtts: dict[str, dict[str, int]] = field(default_factory=dict)
    spot_risk: dict[str, float] = field(default_factory=dict)
    provider_kinds: dict[str, ProviderKind] = field(default_factory=lambda: dict(PROVIDER_KINDS))
    commitments: list[Commitment] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    churn: ChurnPolicy = field(default_factory=ChurnPolicy)
    current_fleet: Plan | None = None

    # ------------------------------------------------------------------------------------- adders

    def region(self, key: str) -> str:
        self.regions.setdefault(key, REGION_CATALOG[key])
        return key

    def offer(
        self,
        region: str,
        price_usd: str | int,
        *,
        gpus: int = 1,
        gpu: GpuType = H100,
        option: PurchaseOption = ON_DEMAND,
        availability: int | None = None,
        instance_type: str | None = None,
        zone: str = "",
        flags: Iterable[OfferFlag] = (),
        risk: float | None = None,
    ) -> str:
        """An offer of ``gpus``-GPU instances at ``price_usd`` per instance-hour; returns its key.

        ``risk`` sets the spot interruption risk of this offer (otherwise the provider's default).
        """
        self.region(region)
        provider, code = region.split("/", 1)
        offer = Offer(
            provider=provider,
            region=code,
            zone=zone,
            instance_type=instance_type or f"{gpu.value.lower()}-{gpus}x",
            gpu_type=gpu,
            gpus_per_instance=gpus,
            purchase_option=option,
            term=ReservedTerm.ONE_YEAR if option is RESERVED else None,
            price_micro_usd_per_hour=usd(price_usd),
            availability=availability,
            flags=frozenset(flags),
        )
        self.offers.append(offer)
        if risk is not None:
            self.spot_risk[offer.key] = risk
        return offer.key

    def model(
        self,
        name: str = "llama",
        *,
        team: str = "chat",
        slo_ms: int = 1000,
        profiles: Iterable[ModelProfile] | None = None,
        redundancy: Redundancy = Redundancy.NONE,
        share: float = 1.0,
        max_spot_share: float = 0.0,
        **one_profile: int | GpuType,
    ) -> str:
        """A model; by default one H100 profile of 1 GPU, 1,000 tokens/s, 100 ms (see ``profile``)."""
        self.models.append(
            Model(
                name=name,
                team=team,
                latency_slo_ms=slo_ms,
                profiles=tuple(profiles) if profiles is not None else (profile(**one_profile),),  # type: ignore[arg-type]
                redundancy=redundancy,
                redundancy_share=share,
                max_spot_share=max_spot_share,
            )
        )
        return name

    def source(
        self,
        name: str = "berlin",
        *,
        rtt_ms: Mapping[str, int] | None,
        residency: Iterable[str] | None = None,
    ) -> str:
        """Users at a place of ``PLACES``, with an exact round trip to each region named in ``rtt_ms``.

        ``rtt_ms=None``: no anchor and no measurements; round trips come from the distance model.
        """
        country, lat, lon = PLACES[name]
        anchor = None
        if rtt_ms is not None:
            continent = Continent.NA if country == "US" else Continent.EU
            probe = Region(
                provider="probe", code=name, country=country, continent=continent, lat=lat, lon=lon
            )
            self.regions[probe.key] = probe
            anchor = probe.key
            for key in rtt_ms:
                self.region(key)
            self.rtts[name] = dict(rtt_ms)
        self.sources.append(
            DemandSource(
                name=name,
                lat=lat,
                lon=lon,
                country=country,
                residency=frozenset(residency) if residency is not None else None,
                anchor_region=anchor,
            )
        )
        return name

    def demand(self, model: str, source: str, tokens_per_s: int) -> None:
        self.demands.append(Demand(model=model, source=source, tokens_per_s=tokens_per_s))

    def commit(self, offer_key: str, instances: int) -> None:
        self.commitments.append(Commitment(offer_key=offer_key, instances=instances))

    def budget(self, limit_micro_usd_per_month: int, team: str | None = None) -> None:
        scope = BudgetScope.TEAM if team else BudgetScope.GLOBAL
        self.budgets.append(
            Budget(scope=scope, team=team, limit_micro_usd_per_month=limit_micro_usd_per_month)
        )

    # -------------------------------------------------------------------------------------- build

    def build(self) -> Problem:
        offered = {offer.region_key for offer in self.offers}
        missing = [
            f"{source} -> {region}"
            for source in self.rtts
            for region in sorted(offered)
            if region not in self.rtts[source]
        ]
        if missing:
            raise ValueError(f"no round trip given for {', '.join(missing)}")
        rtt = tuple(
            RttMeasurement(src=f"probe/{source}", dst=region, rtt_ms=ms)
            for source, by_region in self.rtts.items()
            for region, ms in by_region.items()
        )
        return Problem(
            regions=tuple(self.regions.values()),
            offers=tuple(self.offers),
            models=tuple(self.models),
            sources=tuple(self.sources),
            demand=tuple(self.demands),
            policy=PlanningPolicy(
                target_utilisation=self.utilisation, churn=self.churn, budgets=tuple(self.budgets)
            ),
            rtt=rtt,
            provider_kinds=self.provider_kinds,
            spot_risk=self.spot_risk,
            commitments=tuple(self.commitments),
            current_fleet=self.current_fleet,
        )


# ------------------------------------------------------------------------------------ plans


def placement(offer_key: str, instances: int, **replicas: int) -> Placement:
    """``placement(key, 2, llama=3)``; model names with dashes go through ``replicas_of``."""
    return Placement(
        offer_key=offer_key,
        instances=instances,
        replicas=tuple(ReplicaCount(model=m, replicas=n) for m, n in sorted(replicas.items())),
    )


def replicas_of(offer_key: str, instances: int, replicas: Mapping[str, int]) -> Placement:
    return placement(offer_key, instances, **dict(replicas))


def route(model: str, source: str, region: str, share: float = 1.0) -> Route:
    return Route(model=model, source=source, region=region, share=share)


def plan(*placements: Placement, routes: Iterable[Route] = ()) -> Plan:
    return Plan(placements=tuple(placements), routes=tuple(routes))


def placements_of(plan: Plan) -> dict[str, tuple[int, dict[str, int]]]:
    """offer key -> (instances, {model: replicas}), for exact comparisons."""
    return {p.offer_key: (p.instances, {c.model: c.replicas for c in p.replicas}) for p in plan.placements}


def replicas_by_region(plan: Plan, problem: Problem) -> dict[str, dict[str, int]]:
    """region key -> {model: replicas}."""
    offers = {offer.key: offer for offer in problem.offers}
    out: dict[str, dict[str, int]] = {}
    for p in plan.placements:
        region = offers[p.offer_key].region_key
        for count in p.replicas:
            out.setdefault(region, {})
            out[region][count.model] = out[region].get(count.model, 0) + count.replicas
    return out


def shares_of(plan: Plan) -> dict[tuple[str, str, str], float]:
    """(model, source, region) -> share."""
    return {(r.model, r.source, r.region): r.share for r in plan.routes}


def describe(result: SolveResult) -> str:
    """A readable account of a result for assertion messages."""
    bound = result.lower_bound_micro_usd_per_hour
    lines = [f"status={result.status} cost={result.cost_micro_usd_per_hour} bound={bound}"]
    if result.plan is not None:
        lines += [
            f"  {key}: {inst} instances {reps}" for key, (inst, reps) in placements_of(result.plan).items()
        ]
        lines += [f"  route {r.model} {r.source} -> {r.region} {r.share:.3f}" for r in result.plan.routes]
    lines += [f"  explanation [{e.topic}] {e.text}" for e in result.explanations]
    lines += [f"  violation {v.kind}: {v.message}" for v in result.violations]
    return "\n".join(lines)


def assert_plan(
    result: SolveResult,
    problem: Problem,
    expected: Mapping[str, tuple[int, Mapping[str, int]]],
    cost_micro_usd_per_hour: int,
    *,
    proven: bool = True,
) -> None:
    """The plan is exactly ``expected`` (offer key -> instances, replicas per model) at exactly this cost,
    the bound is at most the cost, and the independent checker finds nothing.

    ``proven``: the status must be optimal. Tests pass ``proven=False`` only where a separate, marked
    test records that the solver does not prove optimality of that tiny problem.
    """
    text = describe(result)
    assert result.plan is not None, text
    assert placements_of(result.plan) == {k: (n, dict(r)) for k, (n, r) in expected.items()}, text
    assert result.cost_micro_usd_per_hour == cost_micro_usd_per_hour, text
    assert result.lower_bound_micro_usd_per_hour is not None, text
    assert result.objective_micro_usd_per_hour is not None, text
    assert result.lower_bound_micro_usd_per_hour <= result.objective_micro_usd_per_hour, text
    assert validate(problem, result.plan) == [], text
    if proven:
        assert result.status is SolveStatus.OPTIMAL, text
    else:
        assert result.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE), text


def assert_infeasible(result: SolveResult, *mentions: str) -> None:
    """The solve answered "infeasible" with no plan and an explanation naming each of ``mentions``
    (model, source, team, constraint words; case-insensitive)."""

    text = describe(result)
    assert result.status is SolveStatus.INFEASIBLE, text
    assert result.plan is None, text
    assert result.explanations, text
    told = " ".join(e.text for e in result.explanations).lower()
    for word in mentions:
        assert word.lower() in told, f"{word!r} not in the diagnosis:\n{text}"


def new_search(index: ProblemIndex, *, deterministic: bool = False) -> Search:
    """A large-neighbourhood search over ``index`` with every model's offers as its candidates (SCIP,
    seed 0, 30 s), as the search's own tests drive it."""
    search = Search(
        index=index,
        solver=mathopt.SolverType.GSCIP,
        seed=0,
        deadline=time.perf_counter() + 30,
        cuts={},
        deterministic=deterministic,
    )
    search.candidates = {m: list(index.slots_of_model[m]) for m in index.demand}
    return search


def instance_cost(index: ProblemIndex) -> Callable[[dict[tuple[int, int], int]], float]:
    """A search's ``cost_of`` for 1-GPU offers: every replica buys one instance at its list price."""
    return lambda replicas: float(sum(index.slots[s].price * n for (_, s), n in replicas.items()))
