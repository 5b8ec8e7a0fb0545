"""Studies over scenario variants: what-if grids, Pareto frontiers and commitment studies.

A study is many independent solves of variants of one base problem. This module holds what they share
and what a REST endpoint would reuse: the task functions a runner (``scheduler.services.sweeps``) maps
over variants, the frontier definitions and the marking of dominated points, the attribution of a
plan's cost to teams, models, regions and purchase options, and the staging of a commitment study
(the plan first, then its risk when demand falls, with the all-on-demand references alongside).

Variants are checked here, before any solve: a change naming something the base problem lacks is a
``WhatIfError`` at once. Studies solve in the solver's deterministic mode by default, so a study gives
the same results on whichever runner computes it. The live state is never changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from scheduler.services.sweeps import Runner, SerialRunner
from solver.commitments.index import CommitmentParams
from solver.commitments.planner import plan_commitments
from solver.commitments.profile import DemandProfile
from solver.commitments.result import CommitmentResult
from solver.domain import Commitment, Plan, PurchaseOption, Redundancy
from solver.problem import Problem, SolveParams
from solver.result import SolveResult
from solver.solve import solve
from solver.whatif import Change, RedundancyChange, SloChange, SpotCapChange, WhatIf, apply_changes

DEFAULT_DROPS = (0.1, 0.2, 0.3)
"""Demand falls a commitment study prices: 10, 20 and 30%."""
IDLE = "(idle)"
"""Team and model of GPUs a plan buys that no replica uses."""


# ------------------------------------------------------------------------------------ what-if solves


@dataclass(frozen=True)
class VariantTask:
    """One variant to solve: its changes to the base problem and the solve's parameters."""

    name: str
    changes: tuple[Change, ...]
    params: SolveParams


def solve_variant(base: Problem, task: VariantTask) -> SolveResult:
    """Task function: apply the changes to the base problem and solve it."""
    return solve(apply_changes(base, task.changes), task.params)


@dataclass(frozen=True)
class VariantOutcome:
    name: str
    changes: tuple[Change, ...]
    problem: Problem
    result: SolveResult


def run_variants(
    base: Problem,
    variants: Sequence[WhatIf],
    params: SolveParams,
    runner: Runner | None = None,
    *,
    progress: bool = True,
    label: str = "what-if solves",
) -> list[VariantOutcome]:
    """Solve every variant of ``base`` on the runner (in this process if None), in the given order.

    Every variant's changes are applied here first, so that a bad change fails before any solve.
    """
    problems = [variant.apply(base) for variant in variants]
    tasks = [VariantTask(variant.name, tuple(variant.changes), params) for variant in variants]
    results = (runner or SerialRunner()).map(solve_variant, base, tasks, label=label, progress=progress)
    return [
        VariantOutcome(task.name, task.changes, problem, result)
        for task, problem, result in zip(tasks, problems, results, strict=True)
    ]


def study_params(
    params: SolveParams | None = None, *, time_limit_s: float = 10.0, seed: int = 0
) -> SolveParams:
    """Parameters of a study's solves: deterministic (reruns and runners agree), one worker per solve
    (the runner parallelises), no explanations unless asked."""
    base = params or SolveParams(time_limit_s=time_limit_s, seed=seed, explain=False)
    return base.model_copy(update={"deterministic": True, "workers": 1})


# ---------------------------------------------------------------------------------------- frontiers


@dataclass(frozen=True)
class FrontierPoint:
    """One point of a frontier: the variant and its value on the frontier's axis."""

    variant: WhatIf
    x: float
    label: str


def latency_points(factors: Iterable[float], models: Sequence[str] = ()) -> list[FrontierPoint]:
    """Every (given) model's latency SLO times each factor (0.8: 20% tighter)."""
    return [
        FrontierPoint(
            WhatIf(name=f"SLO x{f:g}", changes=(SloChange(factor=f, models=tuple(models)),)), f, f"x{f:g}"
        )
        for f in sorted(set(factors))
    ]


REDUNDANCY_LEVELS: tuple[tuple[Redundancy, float], ...] = (
    (Redundancy.NONE, 1.0),
    (Redundancy.REGION, 0.5),
    (Redundancy.REGION, 1.0),
    (Redundancy.PROVIDER, 1.0),
)
"""Protection levels from none to surviving the loss of any provider with all demand served. They form a
chain: each protects at least as much as the one before (losing a provider loses each of its regions; a
larger share keeps more), so any plan of a level keeps the levels before it and the rank is an order.
Levels given instead must form such a chain too (provider 50% and region 100% do not compare)."""


def redundancy_points(
    levels: Sequence[tuple[Redundancy, float]] = REDUNDANCY_LEVELS, models: Sequence[str] = ()
) -> list[FrontierPoint]:
    points = []
    for rank, (level, share) in enumerate(levels):
        label = level.value if level is Redundancy.NONE else f"{level.value} {share:.0%}"
        change = RedundancyChange(level=level, share=share, models=tuple(models))
        points.append(
            FrontierPoint(WhatIf(name=f"redundancy {label}", changes=(change,)), float(rank), label)
        )
    return points


def spot_points(caps: Iterable[float], models: Sequence[str] = ()) -> list[FrontierPoint]:
    return [
        FrontierPoint(
            WhatIf(
                name=f"spot cap {c:.0%}", changes=(SpotCapChange(max_spot_share=c, models=tuple(models)),)
            ),
            c,
            f"{c:.0%}",
        )
        for c in sorted(set(caps))
    ]


def dominated(points: Sequence[tuple[float | None, float]], *, x_better: str) -> list[bool | None]:
    """For (cost, x) points, whether another point is at least as good on both and better on one.

    Lower cost is better; ``x_better`` says which x is better ("lower" or "higher"). A point without a
    cost (no plan) is None: it is on no frontier.
    """
    if x_better not in ("lower", "higher"):
        raise ValueError(f"x_better must be 'lower' or 'higher', got {x_better!r}")
    sign = 1.0 if x_better == "lower" else -1.0
    out: list[bool | None] = []
    for cost, x in points:
        if cost is None:
            out.append(None)
            continue
        out.append(
            any(
                other_cost is not None
                and other_cost <= cost
                and sign * other_x <= sign * x
                and (other_cost < cost or sign * other_x < sign * x)
                for other_cost, other_x in points
            )
        )
    return out


def spot_share(problem: Problem, plan: Plan) -> float:
    """Share of the plan's GPUs that are spot."""
    offers = {offer.key: offer for offer in problem.offers}
    total = spot = 0
    for placement in plan.placements:
        offer = offers[placement.offer_key]
        gpus = placement.instances * offer.gpus_per_instance
        total += gpus
        if offer.purchase_option is PurchaseOption.SPOT:
            spot += gpus
    return spot / total if total else 0.0


# ------------------------------------------------------------------------------------ cost allocation


@dataclass(frozen=True)
class AllocationRow:
    """GPUs of one offer a model's replicas use (or that no replica uses: model and team ``(idle)``)."""

    offer_key: str
    provider: str
    region: str
    gpu_type: str
    purchase_option: str
    model: str
    team: str
    replicas: int
    gpus: int
    cost_micro_usd_per_hour: int
    committed: bool


def _split(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` in integer parts proportional to ``weights``, adding up to it (largest remainder)."""
    whole = sum(weights)
    if whole == 0:
        return [0 for _ in weights]
    shares = [Fraction(total * w, whole) for w in weights]
    parts = [int(share) for share in shares]
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def cost_allocation(problem: Problem, plan: Plan) -> list[AllocationRow]:
    """Each placement's cost split over the models by the GPUs their replicas use, idle GPUs (and committed
    instances no placement uses) as rows of their own; the rows add up to the plan's cost per hour exactly
    (committed instances at their price)."""
    offers = {offer.key: offer for offer in problem.offers}
    models = {model.name: model for model in problem.models}
    committed: dict[str, int] = defaultdict(int)
    for commitment in problem.commitments:
        committed[commitment.offer_key] += commitment.instances
    placed = {placement.offer_key: placement.instances for placement in plan.placements}
    rows = []
    for key, held in sorted(committed.items()):
        # Committed instances no placement uses are paid all the same (the plan's cost counts them).
        unused = held - placed.get(key, 0)
        if unused > 0:
            offer = offers[key]
            rows.append(
                AllocationRow(
                    offer_key=key,
                    provider=offer.provider,
                    region=offer.region_key,
                    gpu_type=offer.gpu_type.value,
                    purchase_option=offer.purchase_option.value,
                    model=IDLE,
                    team=IDLE,
                    replicas=0,
                    gpus=unused * offer.gpus_per_instance,
                    cost_micro_usd_per_hour=unused * offer.price_micro_usd_per_hour,
                    committed=True,
                )
            )
    for placement in plan.placements:
        offer = offers[placement.offer_key]
        price = placement.instances * offer.price_micro_usd_per_hour
        names, gpus, replicas = [], [], []
        for count in placement.replicas:
            profile = models[count.model].profile_for(offer.gpu_type)
            assert profile is not None
            names.append(count.model)
            gpus.append(profile.gpus_per_replica * count.replicas)
            replicas.append(count.replicas)
        idle = max(0, placement.instances * offer.gpus_per_instance - sum(gpus))
        if idle:
            names.append(IDLE)
            gpus.append(idle)
            replicas.append(0)
        for name, used, replica_count, cost in zip(names, gpus, replicas, _split(price, gpus), strict=True):
            rows.append(
                AllocationRow(
                    offer_key=offer.key,
                    provider=offer.provider,
                    region=offer.region_key,
                    gpu_type=offer.gpu_type.value,
                    purchase_option=offer.purchase_option.value,
                    model=name,
                    team=models[name].team if name in models else IDLE,
                    replicas=replica_count,
                    gpus=used,
                    cost_micro_usd_per_hour=cost,
                    committed=offer.key in committed,
                )
            )
    return rows


def team_costs(problem: Problem, plan: Plan) -> dict[str, int]:
    """Micro-USD per hour per team (idle GPUs under ``(idle)``)."""
    totals: dict[str, int] = defaultdict(int)
    for row in cost_allocation(problem, plan):
        totals[row.team] += row.cost_micro_usd_per_hour
    return dict(totals)


def replica_changes(before: Plan | None, after: Plan | None) -> tuple[int, int]:
    """(moved, added): replicas of ``before`` not on the same offer in ``after``, and the reverse."""

    def counts(plan: Plan | None) -> dict[tuple[str, str], int]:
        if plan is None:
            return {}
        return {(p.offer_key, c.model): c.replicas for p in plan.placements for c in p.replicas}

    old, new = counts(before), counts(after)
    moved = sum(max(0, n - new.get(key, 0)) for key, n in old.items())
    added = sum(max(0, n - old.get(key, 0)) for key, n in new.items())
    return moved, added


# ------------------------------------------------------------------------------- commitment studies


@dataclass(frozen=True)
class CommitmentTask:
    name: str
    params: CommitmentParams


def plan_commitment_task(shared: tuple[Problem, DemandProfile], task: CommitmentTask) -> CommitmentResult:
    """Task function: one commitment solve of the shared problem and profile."""
    problem, profile = shared
    return plan_commitments(problem, profile, task.params)


@dataclass(frozen=True)
class RiskScenario:
    drop: float
    """Share by which demand falls (0.2: every hour 20% below the profile)."""
    committed: CommitmentResult
    """The plan's commitments kept, the rest bought by the hour."""
    replanned: CommitmentResult
    """Commitments chosen again for the lower demand (what one would have bought knowing it)."""
    on_demand: CommitmentResult
    """All on demand at the lower demand."""


@dataclass(frozen=True)
class CommitmentStudy:
    plan: CommitmentResult
    on_demand: CommitmentResult
    """The same profile served all on demand: no commitments (held ones included), no spot."""
    risks: tuple[RiskScenario, ...] = ()
    assumed_offers: frozenset[str] = field(default_factory=frozenset)
    """Keys of reserved offers priced by an assumption rather than observed."""


def all_on_demand(params: CommitmentParams, demand_factor: float = 1.0) -> CommitmentParams:
    return params.model_copy(
        update={
            "purchase_options": frozenset({PurchaseOption.ON_DEMAND}),
            "use_existing_commitments": False,
            "demand_factor": demand_factor,
            "fixed_commitments": None,
        }
    )


def new_commitments(result: CommitmentResult) -> tuple[Commitment, ...]:
    return tuple(
        Commitment(offer_key=d.offer_key, instances=d.instances) for d in result.commitments if not d.existing
    )


def commitment_study(
    problem: Problem,
    profile: DemandProfile,
    params: CommitmentParams,
    runner: Runner | None = None,
    *,
    drops: Sequence[float] = DEFAULT_DROPS,
    assumed_offers: frozenset[str] = frozenset(),
    progress: bool = True,
) -> CommitmentStudy:
    """The commitment plan, the all-on-demand reference and the risk of each demand drop.

    Two rounds of independent solves on the runner: the plan with every reference that does not depend
    on it, then the plan's commitments kept while demand falls.
    """
    for drop in drops:
        if not 0.0 < drop < 1.0:
            raise ValueError(f"a demand drop is a share between 0 and 1, got {drop}")
    runner = runner or SerialRunner()
    first = [CommitmentTask("plan", params), CommitmentTask("all on demand", all_on_demand(params))]
    for drop in drops:
        factor = 1.0 - drop
        first.append(
            CommitmentTask(f"replanned -{drop:.0%}", params.model_copy(update={"demand_factor": factor}))
        )
        first.append(CommitmentTask(f"on demand -{drop:.0%}", all_on_demand(params, factor)))
    shared = (problem, profile)
    results = runner.map(plan_commitment_task, shared, first, label="commitment solves", progress=progress)
    plan, on_demand = results[0], results[1]
    risks: list[RiskScenario] = []
    if drops and plan.cost_micro_usd is not None:
        keep = new_commitments(plan)
        second = [
            CommitmentTask(
                f"committed -{drop:.0%}",
                params.model_copy(update={"demand_factor": 1.0 - drop, "fixed_commitments": keep}),
            )
            for drop in drops
        ]
        kept = runner.map(plan_commitment_task, shared, second, label="risk solves", progress=progress)
        for position, drop in enumerate(drops):
            risks.append(
                RiskScenario(
                    drop=drop,
                    committed=kept[position],
                    replanned=results[2 + 2 * position],
                    on_demand=results[3 + 2 * position],
                )
            )
    return CommitmentStudy(plan=plan, on_demand=on_demand, risks=tuple(risks), assumed_offers=assumed_offers)
