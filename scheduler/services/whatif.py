"""What-if against the live state: the database's planning snapshot with changes applied, solved and
compared with the current plan, without writing anything.

The changes are the solver's own change model (``solver.whatif``: price shocks, lost regions and
providers, demand growth, new offers, SLO, residency, redundancy, spot cap and budget changes), the one
the planners' Python API (``api.planning``) and the studies use. Steps:

1. one read transaction: the planning snapshot (``planning.planning_snapshot``) and the base to compare
   with (``BaseChoice``): by default the current plan, that is the newest stored plan computed from
   exactly this snapshot's problem (same ``problem_hash``) and not rejected, superseded or stale; else
   the running fleet (the snapshot's current fleet, at the snapshot's prices); else, with no fleet
   running, the snapshot solved without the changes;
2. the changes applied to the snapshot's problem (an unknown region, provider, model, source or team is a
   ``WhatIfError`` naming it, before any solve);
3. no transaction open: the base solved when it has to be, then the variant;
4. the comparison: cost per hour and month, bound and gap, replicas moved and added, deltas per model and
   per team (``studies.cost_allocation``: idle GPUs under ``(idle)``).

A variant without a plan (infeasible, no plan in time) is an outcome with its status and the solver's
diagnosis, not an error. Nothing is stored: no plan, no audit entry.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import PlanRow, PlanStatus
from scheduler.db.session import Database
from scheduler.services.planning import PlanningSnapshot, planning_snapshot, read_stored_plan
from scheduler.services.plans import problem_hash
from scheduler.services.studies import IDLE, cost_allocation, replica_changes
from solver.domain import Plan, PurchaseOption
from solver.problem import Problem, SolveParams
from solver.result import SolveResult, SolveStatus
from solver.solve import solve
from solver.units import HOURS_PER_MONTH
from solver.whatif import Change, apply_changes

MIN_TIME_LIMIT_S = 1.0
MAX_TIME_LIMIT_S = 120.0
CURRENT_PLAN_STATES = (
    PlanStatus.DRAFT,
    PlanStatus.PENDING_APPROVAL,
    PlanStatus.APPROVED,
    PlanStatus.APPLYING,
    PlanStatus.APPLIED,
    PlanStatus.PARTIALLY_APPLIED,
)
"""States of a stored plan that can stand for the current plan (rejected, superseded, stale, failed
plans do not)."""


class BaseChoice(StrEnum):
    """What a variant is compared with."""

    CURRENT = "current"
    """The current stored plan, else the running fleet, else the live state solved without the changes."""
    SOLVED = "solved"
    """The live state solved without the changes, within the same time limit: the change's own effect,
    apart from what re-planning alone would save."""


class BaseSource(StrEnum):
    PLAN = "plan"
    FLEET = "fleet"
    SOLVED = "solved"


FLEET_STATUS = "current_fleet"
"""Status of a base that is the running fleet (not a solve)."""


@dataclass(frozen=True)
class PlanFigures:
    """One side of the comparison: a plan's status, cost and size, or why there is none."""

    status: str
    cost_micro_usd_per_hour: int | None
    lower_bound_micro_usd_per_hour: int | None
    gap: float | None
    replicas: int | None
    instances: int | None
    gpus: int | None
    spot_gpu_share: float | None
    wall_time_s: float
    plan_id: int | None = None
    """The stored plan standing for the base; None otherwise."""
    source: BaseSource = BaseSource.SOLVED
    """Where the figures come from: a stored plan, the running fleet, or a solve for this question."""
    diagnosis: tuple[str, ...] = ()
    """Why there is no plan (the solver's findings), one line each; empty with a plan."""

    @property
    def has_plan(self) -> bool:
        return self.cost_micro_usd_per_hour is not None

    @property
    def cost_micro_usd_per_month(self) -> int | None:
        cost = self.cost_micro_usd_per_hour
        return None if cost is None else cost * HOURS_PER_MONTH


@dataclass(frozen=True)
class CostDelta:
    """Cost per hour of one model (or team) in the base and the variant; replicas for models."""

    name: str
    team: str | None
    base_micro_usd_per_hour: int
    variant_micro_usd_per_hour: int
    base_replicas: int | None = None
    variant_replicas: int | None = None

    @property
    def delta_micro_usd_per_hour(self) -> int:
        return self.variant_micro_usd_per_hour - self.base_micro_usd_per_hour


@dataclass(frozen=True)
class WhatIfOutcome:
    changes: tuple[str, ...]
    """What each change does, in order (``Change.describe``)."""
    base: PlanFigures
    variant: PlanFigures
    replicas_moved: int | None
    """Replicas of the base not on the same offer in the variant (None without a variant plan)."""
    replicas_added: int | None
    models: tuple[CostDelta, ...]
    teams: tuple[CostDelta, ...]
    prices_observed_to: dt.datetime | None

    @property
    def delta_micro_usd_per_hour(self) -> int | None:
        base, variant = self.base.cost_micro_usd_per_hour, self.variant.cost_micro_usd_per_hour
        return None if base is None or variant is None else variant - base

    @property
    def delta_share(self) -> float | None:
        delta, base = self.delta_micro_usd_per_hour, self.base.cost_micro_usd_per_hour
        return None if delta is None or not base else delta / base


@dataclass(frozen=True)
class _Solved:
    problem: Problem
    plan: Plan | None
    figures: PlanFigures


def current_plan_id(session: Session, snapshot: PlanningSnapshot) -> int | None:
    """The newest stored plan computed from exactly the snapshot's problem, in a state that can stand for
    the current plan; None when every plan is older than the live state (or there is none)."""
    return session.scalar(
        sa.select(PlanRow.id)
        .where(
            PlanRow.problem_hash == problem_hash(snapshot.problem),
            PlanRow.status.in_(CURRENT_PLAN_STATES),
        )
        .order_by(PlanRow.id.desc())
        .limit(1)
    )


def _size(problem: Problem, plan: Plan | None) -> tuple[int | None, int | None, int | None, float | None]:
    if plan is None:
        return None, None, None, None
    offers = {offer.key: offer for offer in problem.offers}
    replicas = instances = gpus = spot = 0
    for placement in plan.placements:
        offer = offers[placement.offer_key]
        instances += placement.instances
        gpus += placement.instances * offer.gpus_per_instance
        if offer.purchase_option is PurchaseOption.SPOT:
            spot += placement.instances * offer.gpus_per_instance
        replicas += sum(count.replicas for count in placement.replicas)
    return replicas, instances, gpus, (spot / gpus if gpus else 0.0)


def _diagnosis(result: SolveResult) -> tuple[str, ...]:
    if result.plan is not None:
        return ()
    lines = tuple(e.text for e in result.explanations)
    if lines:
        return lines
    if result.status is SolveStatus.NO_PLAN:
        return ("no plan was found within the time limit; give a longer time_limit_s",)
    return (f"the solver found no plan ({result.status.value})",)


def _from_result(problem: Problem, result: SolveResult) -> _Solved:
    replicas, instances, gpus, spot = _size(problem, result.plan)
    has = result.plan is not None
    figures = PlanFigures(
        status=result.status.value,
        cost_micro_usd_per_hour=result.cost_micro_usd_per_hour if has else None,
        lower_bound_micro_usd_per_hour=result.lower_bound_micro_usd_per_hour,
        gap=result.gap if has else None,
        replicas=replicas,
        instances=instances,
        gpus=gpus,
        spot_gpu_share=spot,
        wall_time_s=result.wall_time_s,
        diagnosis=_diagnosis(result),
    )
    return _Solved(problem, result.plan, figures)


def _from_stored(session: Session, problem: Problem, plan_id: int) -> _Solved:
    row = session.get_one(PlanRow, plan_id)
    plan = read_stored_plan(session, plan_id)
    replicas, instances, gpus, spot = _size(problem, plan)
    figures = PlanFigures(
        status=row.solver_status,
        cost_micro_usd_per_hour=row.cost_micro_usd_per_hour,
        lower_bound_micro_usd_per_hour=row.lower_bound_micro_usd_per_hour,
        gap=row.gap,
        replicas=replicas,
        instances=instances,
        gpus=gpus,
        spot_gpu_share=spot,
        wall_time_s=0.0,
        plan_id=plan_id,
        source=BaseSource.PLAN,
    )
    return _Solved(problem, plan, figures)


def _from_fleet(problem: Problem) -> _Solved | None:
    """The running fleet as the base, at the snapshot's prices (committed instances included)."""
    fleet = problem.current_fleet
    if fleet is None or not fleet.placements:
        return None
    cost = sum(row.cost_micro_usd_per_hour for row in cost_allocation(problem, fleet))
    replicas, instances, gpus, spot = _size(problem, fleet)
    figures = PlanFigures(
        status=FLEET_STATUS,
        cost_micro_usd_per_hour=cost,
        lower_bound_micro_usd_per_hour=None,
        gap=None,
        replicas=replicas,
        instances=instances,
        gpus=gpus,
        spot_gpu_share=spot,
        wall_time_s=0.0,
        source=BaseSource.FLEET,
    )
    return _Solved(problem, fleet, figures)


def _costs(solved: _Solved) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, int]]:
    """Cost per hour by (model, team) and by team, and replicas by model."""
    by_model: dict[tuple[str, str], int] = defaultdict(int)
    by_team: dict[str, int] = defaultdict(int)
    replicas: dict[str, int] = defaultdict(int)
    if solved.plan is None:
        return {}, {}, {}
    for row in cost_allocation(solved.problem, solved.plan):
        by_model[(row.model, row.team)] += row.cost_micro_usd_per_hour
        by_team[row.team] += row.cost_micro_usd_per_hour
        replicas[row.model] += row.replicas
    return dict(by_model), dict(by_team), dict(replicas)


def _deltas(base: _Solved, variant: _Solved) -> tuple[tuple[CostDelta, ...], tuple[CostDelta, ...]]:
    if base.plan is None or variant.plan is None:
        return (), ()
    base_models, base_teams, base_replicas = _costs(base)
    variant_models, variant_teams, variant_replicas = _costs(variant)
    teams_of = {model.name: model.team for model in (*base.problem.models, *variant.problem.models)}
    teams_of[IDLE] = IDLE
    names = sorted(({model for model, _ in (*base_models, *variant_models)} | set(teams_of)) - {IDLE})
    names.append(IDLE)
    models = []
    for name in names:
        team = teams_of[name]
        models.append(
            CostDelta(
                name=name,
                team=team,
                base_micro_usd_per_hour=base_models.get((name, team), 0),
                variant_micro_usd_per_hour=variant_models.get((name, team), 0),
                base_replicas=base_replicas.get(name, 0),
                variant_replicas=variant_replicas.get(name, 0),
            )
        )
    team_names = sorted(set(base_teams) | set(variant_teams) | {t for t in teams_of.values() if t != IDLE})
    teams = [
        CostDelta(
            name=team,
            team=team,
            base_micro_usd_per_hour=base_teams.get(team, 0),
            variant_micro_usd_per_hour=variant_teams.get(team, 0),
        )
        for team in team_names
        if team != IDLE
    ]
    teams.append(
        CostDelta(
            name=IDLE,
            team=IDLE,
            base_micro_usd_per_hour=base_teams.get(IDLE, 0),
            variant_micro_usd_per_hour=variant_teams.get(IDLE, 0),
        )
    )
    return tuple(models), tuple(teams)


def what_if(
    database: Database,
    changes: Sequence[Change],
    *,
    time_limit_s: float,
    now: dt.datetime,
    workers: int = 2,
    seed: int = 0,
    base: BaseChoice = BaseChoice.CURRENT,
) -> WhatIfOutcome:
    """Solve the live state with ``changes`` and compare it with ``base`` (see ``BaseChoice``). Each solve
    gets ``time_limit_s``; an infeasible variant's diagnosis may take a few seconds more. Raises
    ``WhatIfError`` for a change naming something the live state lacks and ``PlanningError`` when the
    database holds nothing to plan; writes nothing."""
    if not MIN_TIME_LIMIT_S <= time_limit_s <= MAX_TIME_LIMIT_S:
        raise ValueError(
            f"time_limit_s must be {MIN_TIME_LIMIT_S:g}..{MAX_TIME_LIMIT_S:g}, got {time_limit_s}"
        )
    with database.transaction() as session:
        snapshot = planning_snapshot(session, now=now)
        stored = None
        if base is BaseChoice.CURRENT:
            plan_id = current_plan_id(session, snapshot)
            if plan_id is not None:
                stored = _from_stored(session, snapshot.problem, plan_id)
            else:
                stored = _from_fleet(snapshot.problem)
        session.rollback()  # nothing was written; end the read without a commit
    variant_problem = apply_changes(snapshot.problem, changes)
    params = SolveParams(time_limit_s=time_limit_s, workers=workers, seed=seed, explain=False)
    compared = stored or _from_result(snapshot.problem, solve(snapshot.problem, params))
    # Explanations of a plan are off (they take a share of the time); an infeasible variant comes back
    # with the solver's diagnosis all the same.
    variant = _from_result(variant_problem, solve(variant_problem, params))
    moved = added = None
    if variant.plan is not None:
        moved, added = replica_changes(compared.plan, variant.plan)
    models, teams = _deltas(compared, variant)
    return WhatIfOutcome(
        changes=tuple(change.describe() for change in changes),
        base=compared.figures,
        variant=variant.figures,
        replicas_moved=moved,
        replicas_added=added,
        models=models,
        teams=teams,
        prices_observed_to=snapshot.prices_observed_to,
    )
