"""``plan_commitments(problem, profile, params) -> CommitmentResult``: the commitments to buy for a profile
of hourly demand and the capacity around them, with a proven lower bound.

The whole multi-period MIP (``solver.commitments.formulation``, docs/planners.md "The commitment
planner") is solved by HiGHS through MathOpt in steps on one model (``_solve``): its LP relaxation (the
lower bound; its solution rounded up a plan), the MIP with the LP's commitments fixed (the hours are
then independent, so this is fast), the MIP with on-demand capacity only if there is no plan yet, then
the whole MIP in the time left (in deterministic mode, within node limits). The cheapest plan is kept;
the bound is the better of the LP's and the MIP's dual bound. Committed capacity is used first: with
the integer decisions fixed, one LP puts each hour's load on commitments before anything bought by the
hour and uses as little capacity as the rules need, so that utilisation reports what the plan needs.

Measured (docs/planners.md): hours decouple once commitments are fixed, but each hour's MIP alone
took 1-4 s on the sample fleet, so a decomposition over hours was slower than HiGHS on the whole.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ortools.math_opt.python import mathopt

from solver.commitments.formulation import CommitmentMip, build_mip, used_candidates
from solver.commitments.index import (
    DETERMINISTIC_NODES,
    DETERMINISTIC_TIME_S,
    EPSILON,
    FIRST_WEIGHT,
    MONEY_SCALE,
    TERM_MONTHS,
    Candidate,
    CommitmentIndex,
    CommitmentParams,
    OfferClass,
    build_commitment_index,
)
from solver.commitments.profile import DemandProfile
from solver.commitments.result import (
    CommitmentDecision,
    CommitmentResult,
    CommitmentStatus,
    HourlyCapacity,
)
from solver.engine import interruptible_solve
from solver.problem import Problem
from solver.units import HOURS_PER_YEAR

MIN_STEP_S = 0.05
LP_SHARE = 0.4
"""Share of the time left after building the model for the LP relaxation (at least ``MIN_LP_S``)."""
FIXED_SHARE = 0.5
"""Share of the time left then for the MIP with the LP's commitments fixed."""
SIMPLE_SHARE = 0.5
"""Share of the time left then for the MIP with on-demand capacity only."""
MIN_LP_S = 2.0
"""The LP relaxation gets at least this long, past the limit if need be (a plan rather than none)."""


@dataclass
class _Outcome:
    reason: str  # optimal | feasible | infeasible | no_plan
    commit: dict[int, int] = field(default_factory=dict)
    buy: dict[tuple[int, int], int] = field(default_factory=dict)
    bound_usd: float | None = None
    usage: dict[tuple[int, int], float] | None = None
    diagnosis: tuple[str, ...] = ()


@dataclass
class _Clock:
    params: CommitmentParams
    started: float

    @property
    def deadline(self) -> float:
        return self.started + self.params.time_limit_s

    def left(self) -> float:
        return self.deadline - time.monotonic()


def plan_commitments(
    problem: Problem,
    profile: DemandProfile,
    params: CommitmentParams | None = None,
) -> CommitmentResult:
    """The cheapest commitments and hourly capacity that serve the profile, with the proven bound."""
    params = params or CommitmentParams()
    clock = _Clock(params, time.monotonic())
    index = build_commitment_index(problem, profile, params)
    stats: dict[str, float | int | str] = {}
    if index.unservable:
        return CommitmentResult(
            status=CommitmentStatus.INFEASIBLE,
            hours=index.hours,
            demand_factor=params.demand_factor,
            wall_time_s=time.monotonic() - clock.started,
            diagnosis=tuple(index.unservable),
        )
    used = used_candidates(index)
    integers = sum(
        index.hours if index.candidates[i].per_hour else 1
        for i in used
        if index.candidates[i].per_hour or _free(index.candidates[i])
    )
    stats["candidate_offers"] = len(used)
    stats["integer_variables"] = integers
    outcome = _solve(index, clock, stats)
    wall = time.monotonic() - clock.started
    if outcome.reason in ("infeasible", "no_plan"):
        bound = None if outcome.bound_usd is None else _bound_micro(index, outcome.bound_usd)
        return CommitmentResult(
            status=CommitmentStatus(outcome.reason),
            hours=index.hours,
            demand_factor=params.demand_factor,
            lower_bound_micro_usd=bound,
            wall_time_s=wall,
            diagnosis=outcome.diagnosis,
            stats=stats,
        )
    cost = _cost(index, outcome.commit, outcome.buy)
    bound = None if outcome.bound_usd is None else min(cost, _bound_micro(index, outcome.bound_usd))
    usage = outcome.usage or {}
    stats["usage"] = "computed" if outcome.usage is not None else "not computed"
    gap = ((cost - bound) / cost if cost else 0.0) if bound is not None else None
    optimal = gap is not None and gap <= params.relative_gap + 1e-9
    status = CommitmentStatus.OPTIMAL if optimal else CommitmentStatus.FEASIBLE
    return CommitmentResult(
        status=status,
        hours=index.hours,
        demand_factor=params.demand_factor,
        commitments=tuple(_decisions(index, outcome.commit, usage)),
        hourly=tuple(_hourly(index, outcome.commit, outcome.buy, usage)),
        cost_micro_usd=cost,
        lower_bound_micro_usd=bound,
        wall_time_s=time.monotonic() - clock.started,
        stats=stats,
    )


def _free(candidate: Candidate) -> bool:
    """A reserved offer whose commitment the plan decides."""
    return candidate.offer_class is OfferClass.RESERVED and not candidate.fixed


def _bound_micro(index: CommitmentIndex, bound_usd: float) -> int:
    """A bound of the MIP's objective (USD) as micro-USD over the profile, with what the MIP leaves out."""
    return max(0, math.floor(bound_usd * MONEY_SCALE + 1e-6)) + _constant(index)


def _constant(index: CommitmentIndex) -> int:
    """Micro-USD over the profile of capacity the MIP takes as given: held and caller-fixed commitments."""
    total = 0
    for candidate in index.candidates:
        if candidate.offer_class is OfferClass.COMMITTED or (
            candidate.offer_class is OfferClass.RESERVED and candidate.fixed
        ):
            total += candidate.price * candidate.fixed * index.hours
    return total


def _cost(index: CommitmentIndex, commit: Mapping[int, int], buy: Mapping[tuple[int, int], int]) -> int:
    cost = _constant(index)
    cost += sum(index.candidates[i].price * n * index.hours for i, n in commit.items())
    cost += sum(index.candidates[i].price * n for (i, _h), n in buy.items())
    return cost


def _parameters(
    clock: _Clock, *, relative_gap: float, time_s: float | None = None
) -> mathopt.SolveParameters:
    params = clock.params
    if params.deterministic:
        return mathopt.SolveParameters(
            time_limit=dt.timedelta(seconds=DETERMINISTIC_TIME_S),
            node_limit=DETERMINISTIC_NODES,
            relative_gap_tolerance=relative_gap,
            random_seed=params.seed,
            enable_output=False,
        )
    limit = clock.left() if time_s is None else time_s
    return mathopt.SolveParameters(
        time_limit=dt.timedelta(seconds=max(MIN_STEP_S, limit)),
        relative_gap_tolerance=relative_gap,
        random_seed=params.seed,
        enable_output=False,
    )


_INFEASIBLE = (mathopt.TerminationReason.INFEASIBLE, mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED)


def _dual_bound(result: mathopt.SolveResult) -> float | None:
    bound = result.termination.objective_bounds.dual_bound
    return bound if math.isfinite(bound) else None


# -------------------------------------------------------------------------------------------- solve


def _solve(index: CommitmentIndex, clock: _Clock, stats: dict[str, float | int | str]) -> _Outcome:
    """Four steps on one model, the cheapest plan and the best bound kept:

    1. the LP relaxation: its value is a lower bound, and its solution with every instance count rounded
       up is a plan (more instances never break a rule);
    2. the MIP with the commitments fixed at the LP's, rounded down: once commitments are fixed the
       hours are independent, so whole instances per hour come fast;
    3. if there is no plan yet, the MIP with on-demand capacity only (no commitment, no spot), for the
       same reason;
    4. the whole MIP in the time left (its dual bound may beat the LP's).
    """
    built = time.monotonic()
    mip = build_mip(index, range(index.hours))
    stats["build_s"] = round(time.monotonic() - built, 3)
    stats["variables"] = mip.model.get_num_variables()
    stats["constraints"] = mip.model.get_num_linear_constraints()
    best: tuple[int, dict[int, int], dict[tuple[int, int], int]] | None = None
    bound: float | None = None

    def consider(values: Any, label: str, *, rounding: Any = round) -> None:
        nonlocal best
        commit = _positive({i: int(rounding(values[var])) for (i, _h), var in mip.commit.items()})
        buy = _positive({key: int(rounding(values[var])) for key, var in mip.buy.items()})
        cost = _cost(index, commit, buy)
        if best is None or cost < best[0]:
            best = (cost, commit, buy)
            stats["plan_from"] = label

    integers = [*mip.commit.values(), *mip.buy.values()]
    for var in integers:
        var.integer = False
    solved = time.monotonic()
    lp = _highs(
        mip.model, _parameters(clock, relative_gap=0.0, time_s=max(clock.left() * LP_SHARE, MIN_LP_S))
    )
    stats["lp_s"] = round(time.monotonic() - solved, 3)
    for var in integers:
        var.integer = True
    if lp.termination.reason in _INFEASIBLE:
        return _Outcome("infeasible", diagnosis=(_infeasibility(index),))
    lp_commit: dict[Any, float] = {}
    if lp.termination.reason is mathopt.TerminationReason.OPTIMAL:
        bound = lp.objective_value()
        stats["lp_bound_usd"] = round(bound, 4)
        values = lp.variable_values()
        lp_commit = {var: values[var] for var in mip.commit.values()}
        consider(values, "LP rounded up", rounding=lambda v: math.ceil(v - EPSILON))

    def restricted(label: str, share: float, limits: list[tuple[Any, float, float]]) -> None:
        saved = [(var, var.lower_bound, var.upper_bound) for var, _, _ in limits]
        for var, lower, upper in limits:
            var.lower_bound, var.upper_bound = lower, upper
        if clock.params.deterministic or clock.left() > MIN_STEP_S:
            result = _highs(
                mip.model,
                _parameters(clock, relative_gap=clock.params.relative_gap, time_s=clock.left() * share),
            )
            stats[label] = result.termination.reason.name.lower()
            if result.has_primal_feasible_solution():
                consider(result.variable_values(), label)
        for var, lower, upper in saved:
            var.lower_bound, var.upper_bound = lower, upper

    if lp_commit:
        level = {var: float(math.floor(value + EPSILON)) for var, value in lp_commit.items()}
        restricted("MIP, LP commitments", FIXED_SHARE, [(var, n, n) for var, n in level.items()])
    on_demand_only = [
        (var, 0.0, 0.0)
        for (i, _h), var in [*mip.commit.items(), *mip.buy.items()]
        if index.candidates[i].offer_class is not OfferClass.ON_DEMAND
    ]
    if best is None:
        restricted("MIP, on demand only", SIMPLE_SHARE, on_demand_only)
    if clock.params.deterministic or clock.left() > MIN_STEP_S:
        result = _highs(mip.model, _parameters(clock, relative_gap=clock.params.relative_gap))
        stats["mip_s"] = round(result.solve_stats.solve_time.total_seconds(), 3)
        stats["termination"] = result.termination.reason.name.lower()
        if result.termination.reason in _INFEASIBLE:
            return _Outcome("infeasible", diagnosis=(_infeasibility(index),))
        mip_bound = _dual_bound(result)
        if mip_bound is not None:
            bound = mip_bound if bound is None else max(bound, mip_bound)
        if result.has_primal_feasible_solution():
            consider(result.variable_values(), "MIP")
    if best is None:
        return _Outcome("no_plan", bound_usd=bound, diagnosis=(_no_plan(clock),))
    _, commit, buy = best
    usage = _usage(index, range(index.hours), commit, buy)
    return _Outcome("feasible", commit, buy, bound, usage)


def _highs(model: mathopt.Model, params: mathopt.SolveParameters) -> mathopt.SolveResult:
    return interruptible_solve(model, mathopt.SolverType.HIGHS, params=params)


def _positive(counts: dict[Any, int]) -> dict[Any, int]:
    return {key: n for key, n in counts.items() if n > 0}


# ------------------------------------------------------------------------------------------- usage


def _usage(
    index: CommitmentIndex,
    hours: Sequence[int] | range,
    commit: Mapping[int, int],
    buy: Mapping[tuple[int, int], int],
) -> dict[tuple[int, int], float] | None:
    """GPUs used per (candidate, hour) with the integer decisions fixed: committed capacity first, then as
    little as the rules need. None if the LP fails."""
    mip = build_mip(index, hours, integral=False, commitments=commit)
    for key, var in mip.buy.items():
        var.lower_bound = var.upper_bound = float(buy.get(key, 0))
    mip.model.minimize(_usage_objective(index, mip))
    result = _highs(mip.model, mathopt.SolveParameters(enable_output=False))
    if result.termination.reason is not mathopt.TerminationReason.OPTIMAL:
        return None
    values = result.variable_values()
    used: dict[tuple[int, int], float] = defaultdict(float)
    for (model_name, i, h), var in mip.replicas.items():
        value = values[var]
        if value > EPSILON:
            profile = index.models[model_name].profile_for(index.candidates[i].offer.gpu_type)
            assert profile is not None
            used[(i, h)] += profile.gpus_per_replica * value
    return dict(used)


def _usage_objective(index: CommitmentIndex, mip: CommitmentMip) -> mathopt.LinearExpression:
    terms = []
    for (model_name, i, _h), var in mip.replicas.items():
        candidate = index.candidates[i]
        profile = index.models[model_name].profile_for(candidate.offer.gpu_type)
        assert profile is not None
        weight = FIRST_WEIGHT if candidate.per_hour else 1.0
        terms.append(weight * profile.gpus_per_replica * var)
    return mathopt.fast_sum(terms)


# ------------------------------------------------------------------------------------------ results


def _infeasibility(index: CommitmentIndex, *, hour: int | None = None) -> str:
    limited = sorted(
        {
            c.offer.key
            for c in index.candidates
            if c.availability is not None and c.offer_class is not OfferClass.COMMITTED
        }
    )
    when = (
        "every hour of the profile"
        if hour is None
        else f"hour {hour} of the profile ({index.profile.hour_start(hour):%a %H:%M} UTC)"
    )
    text = f"no capacity plan serves {when} under the redundancy, spot and availability rules"
    if limited:
        shown = ", ".join(limited[:3]) + (f" and {len(limited) - 3} more" if len(limited) > 3 else "")
        text += f"; candidate offers with limited availability: {shown}"
    return text


def _no_plan(clock: _Clock) -> str:
    if clock.params.deterministic:
        return f"no capacity plan was found within {DETERMINISTIC_NODES} branch-and-bound nodes"
    return f"no capacity plan was found within the time limit of {clock.params.time_limit_s:g} s"


def _count(candidate: Candidate, commit: Mapping[int, int]) -> int:
    return commit.get(candidate.index, 0) if _free(candidate) else candidate.fixed


def _decisions(
    index: CommitmentIndex, commit: Mapping[int, int], usage: Mapping[tuple[int, int], float]
) -> list[CommitmentDecision]:
    out = []
    for candidate in index.candidates:
        if candidate.per_hour:
            continue
        count = _count(candidate, commit)
        if count <= 0:
            continue
        offer = candidate.offer
        used = sum(usage.get((candidate.index, h), 0.0) for h in range(index.hours))
        held = count * candidate.gpus * index.hours
        utilisation = min(1.0, used / held) if held else 0.0
        od = index.on_demand_gpu_price.get(candidate.pool)
        break_even = (candidate.price / candidate.gpus) / od if od else None
        months = TERM_MONTHS.get(offer.term) if offer.term is not None else None
        break_even_months = None
        if break_even is not None and months is not None and utilisation > 0:
            break_even_months = months * break_even / utilisation
        saving = None
        if od:
            per_profile = used * od - count * candidate.price * index.hours
            saving = math.floor(per_profile * HOURS_PER_YEAR / index.hours + 0.5)
        out.append(
            CommitmentDecision(
                offer_key=offer.key,
                provider=offer.provider,
                region=offer.region,
                gpu_type=offer.gpu_type,
                instance_type=offer.instance_type,
                gpus_per_instance=offer.gpus_per_instance,
                purchase_option=offer.purchase_option,
                term=offer.term,
                upfront=offer.upfront,
                existing=candidate.offer_class is OfferClass.COMMITTED,
                instances=count,
                price_micro_usd_per_hour=candidate.price,
                used_gpu_hours=round(used, 6),
                utilisation=round(utilisation, 6),
                on_demand_micro_usd_per_gpu_hour=od,
                break_even_utilisation=None if break_even is None else round(break_even, 6),
                break_even_months=None if break_even_months is None else round(break_even_months, 3),
                saving_micro_usd_per_year=saving,
            )
        )
    return sorted(out, key=lambda d: (d.existing, -d.instances * d.price_micro_usd_per_hour, d.offer_key))


def _hourly(
    index: CommitmentIndex,
    commit: Mapping[int, int],
    buy: Mapping[tuple[int, int], int],
    usage: Mapping[tuple[int, int], float],
) -> list[HourlyCapacity]:
    out = []
    for candidate in index.candidates:
        for h in range(index.hours):
            count = buy.get((candidate.index, h), 0) if candidate.per_hour else _count(candidate, commit)
            if count <= 0:
                continue
            out.append(
                HourlyCapacity(
                    hour=h,
                    offer_key=candidate.offer.key,
                    purchase_option=candidate.offer.purchase_option,
                    committed=not candidate.per_hour,
                    instances=count,
                    gpus_used=round(usage.get((candidate.index, h), 0.0), 6),
                    cost_micro_usd=count * candidate.price,
                )
            )
    return sorted(out, key=lambda row: (row.hour, row.offer_key))
