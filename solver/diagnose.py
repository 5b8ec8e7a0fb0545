"""Why no plan exists: which demand cannot be served and by which rules, and what relaxing a policy costs.

Infeasibility is an answer, not an exception. ``unservable`` explains each (model, source) demand that
no pool can serve (residency leaves no region, no region within the SLO, no GPU type the model fits);
``budget_findings`` compares budgets with the cheapest possible plan; ``relaxations`` ranks what each
policy relaxation would cost, from the per-model relaxed optima (lower bounds, fast).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from solver.domain import BudgetScope, Model, Redundancy
from solver.index import ProblemIndex
from solver.problem import Problem
from solver.result import Explanation, Topic
from solver.rules import over_by_ms, replica_fit
from solver.units import HOURS_PER_MONTH, format_usd


def unservable(index: ProblemIndex) -> list[Explanation]:
    """One explanation per (model, source) with no eligible pool, naming the rule that excludes each."""
    out = []
    for m, demand in sorted(index.demand.items()):
        model = index.models[m]
        for s in sorted(demand):
            if index.eligible.get((m, s)):
                continue
            out.append(
                Explanation(
                    topic=Topic.INFEASIBLE,
                    model=model.name,
                    text=f"{model.name} from {index.sources[s]} cannot be served: {_why(index, model, s)}",
                )
            )
    return out


def _why(index: ProblemIndex, model: Model, s: int) -> str:
    source = index.problem.sources[s]
    fitting = [
        slot
        for slot in index.slots
        if (profile := model.profile_for(slot.gpu_type)) is not None
        and replica_fit(profile.gpus_per_replica, slot.gpus)
    ]
    if not fitting:
        types = ", ".join(p.gpu_type.value for p in model.profiles)
        return f"no usable offer of a GPU type it runs on ({types}) fits its replicas"
    allowed = [slot for slot in fitting if source.allows(index.regions[slot.region])]
    if not allowed:
        rule = ", ".join(sorted(source.residency or ()))
        return f"its residency rule ({rule}) allows no region with an offer the model fits"
    best = None
    for slot in allowed:
        profile = model.profile_for(slot.gpu_type)
        assert profile is not None
        over = over_by_ms(index.rtt[(s, slot.region)], profile, model)
        if best is None or over < best[0]:
            best = (over, slot)
    assert best is not None
    over, slot = best
    region = index.regions[slot.region]
    return (
        f"no allowed region is within its {model.latency_slo_ms} ms SLO; the closest, {region.key} on "
        f"{slot.gpu_type.value}, is {over} ms over ({index.rtt[(s, slot.region)]} ms round trip)"
    )


@dataclass(frozen=True)
class BudgetFinding:
    scope: BudgetScope
    team: str | None
    limit_micro_usd_per_month: int
    cheapest_micro_usd_per_month: int
    """The lower bound on what any plan keeping every other rule costs (for the team: its share)."""


def budget_findings(
    problem: Problem, bound_micro_usd_per_hour: float, team_bounds: dict[str, float]
) -> list[BudgetFinding]:
    """Budgets below the cheapest possible plan (proven: the bound already exceeds them)."""
    out = []
    for budget in problem.policy.budgets:
        if budget.scope is BudgetScope.GLOBAL:
            cheapest = bound_micro_usd_per_hour * HOURS_PER_MONTH
        else:
            cheapest = team_bounds.get(budget.team or "", 0.0) * HOURS_PER_MONTH
        if cheapest > budget.limit_micro_usd_per_month:
            out.append(
                BudgetFinding(budget.scope, budget.team, budget.limit_micro_usd_per_month, int(cheapest))
            )
    return out


def describe_budget(finding: BudgetFinding) -> str:
    who = "the global budget" if finding.scope is BudgetScope.GLOBAL else f"team {finding.team}'s budget"
    limit = format_usd(finding.limit_micro_usd_per_month, 0)
    cheapest = format_usd(finding.cheapest_micro_usd_per_month, 0)
    return (
        f"{who} of {limit}/month is below the cheapest plan that keeps every other rule, "
        f"which costs at least {cheapest}/month"
    )


def model_findings(index: ProblemIndex, m: int, fixes: list[str]) -> Explanation:
    """Why one model cannot be planned even alone; ``fixes`` names the relaxations that would allow it."""
    model = index.models[m]
    details = []
    if model.redundancy is not Redundancy.NONE:
        for s in sorted(index.demand[m]):
            domains = {
                index.regions[pool[0]].key
                if model.redundancy is Redundancy.REGION
                else index.regions[pool[0]].provider
                for pool in index.eligible.get((m, s), [])
            }
            if len(domains) <= 1:
                where = ", ".join(sorted(domains)) or "nothing"
                level = model.redundancy.value
                details.append(
                    f"{level} redundancy needs a second {level} that can serve {index.sources[s]} within "
                    f"the SLO and residency rules, and only {where} can"
                )
    if "availability" in " ".join(fixes):
        demand = ", ".join(
            f"{index.sources[s]} {tokens:,} tokens/s" for s, tokens in sorted(index.demand[m].items())
        )
        details.append(
            f"the instances available within its SLO and residency rules cannot hold its demand ({demand})"
        )
    text = f"{model.name} cannot be planned even on its own"
    if details:
        text += ": " + "; ".join(details)
    if fixes:
        text += f" (it could be with: {', '.join(fixes)})"
    return Explanation(topic=Topic.INFEASIBLE, model=model.name, text=text)


# ------------------------------------------------------------------------------------- relaxations

Relaxation = tuple[str, Callable[[Problem], Problem]]


def _models(problem: Problem, change: Callable[[Model], Model]) -> Problem:
    return problem.model_copy(update={"models": tuple(change(m) for m in problem.models)})


RELAXATIONS: list[Relaxation] = [
    (
        "drop redundancy (no model survives a region or provider loss)",
        lambda p: _models(p, lambda m: m.model_copy(update={"redundancy": Redundancy.NONE})),
    ),
    (
        "lower the redundancy share to 50% of demand",
        lambda p: _models(
            p, lambda m: m.model_copy(update={"redundancy_share": min(m.redundancy_share, 0.5)})
        ),
    ),
    (
        "allow every model up to 100% spot",
        lambda p: _models(p, lambda m: m.model_copy(update={"max_spot_share": 1.0})),
    ),
    (
        "relax every latency SLO by 25%",
        lambda p: _models(p, lambda m: m.model_copy(update={"latency_slo_ms": int(m.latency_slo_ms * 1.25)})),
    ),
    (
        "drop the residency rules",
        lambda p: p.model_copy(
            update={"sources": tuple(s.model_copy(update={"residency": None}) for s in p.sources)}
        ),
    ),
    (
        "run at 95% target utilisation",
        lambda p: p.model_copy(
            update={
                "policy": p.policy.model_copy(
                    update={"target_utilisation": max(0.95, p.policy.target_utilisation)}
                )
            }
        ),
    ),
]


def relaxed_bounds(
    problem: Problem, bound_of: Callable[[Problem], float], baseline_bound: float
) -> list[Explanation]:
    """What each policy relaxation would lower the cheapest possible plan to, ranked by saving.

    ``bound_of`` returns a lower bound (micro-USD per hour) of a problem, or infinity when it was not
    computed in time (that relaxation is left out); the figures are bounds, so the text says "at least".
    """
    rows = []
    for label, relax in RELAXATIONS:
        relaxed = relax(problem)
        if relaxed == problem:
            continue
        value = bound_of(relaxed)
        if math.isfinite(value):
            rows.append((value, label))
    rows.sort()
    out = []
    for value, label in rows:
        saving = (baseline_bound - value) * HOURS_PER_MONTH
        out.append(
            Explanation(
                topic=Topic.RELAXATION,
                text=(
                    f"{label}: the cheapest plan would cost at least "
                    f"{format_usd(int(value * HOURS_PER_MONTH), 0)}/month "
                    f"({format_usd(int(saving), 0)}/month less than with the policy)"
                ),
                monthly_micro_usd=round(value * HOURS_PER_MONTH),
            )
        )
    return out
