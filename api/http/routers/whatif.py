"""``POST /v1/what-if``: the live state with changes, solved and compared with the current plan.

Viewers may ask: a what-if changes nothing (no plan is stored, no audit entry is written); its cost is
solver time, bounded by ``time_limit_s`` (at most two solves of that length, the base only when no
stored plan is current and no fleet runs, or when asked). The work is ``scheduler.services.whatif``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from api.http.deps import DatabaseDep, ViewerDep
from api.http.problems import COMMON_PROBLEMS, ApiProblem, FieldError, problem_responses
from scheduler.services.whatif import (
    MAX_TIME_LIMIT_S,
    MIN_TIME_LIMIT_S,
    BaseChoice,
    CostDelta,
    PlanFigures,
    WhatIfOutcome,
    what_if,
)
from solver.whatif import Change, WhatIfError

router = APIRouter(prefix="/what-if", tags=["what-if"])

MAX_CHANGES = 50
_POSITION = re.compile(r"^changes\[(\d+)\] ")


def usd(micro: int | None) -> float | None:
    """Micro-USD as USD (six decimals: exact)."""
    return None if micro is None else round(micro / 1_000_000, 6)


class WhatIfRequest(BaseModel):
    """Changes to the live state, applied in order (each a ``kind`` of ``solver.whatif``), and the time
    each solve may take."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "changes": [
                        {"kind": "price_shock", "factor": 1.3, "providers": ["aws"]},
                        {"kind": "region_lost", "regions": ["aws/us-east-1"]},
                        {"kind": "demand_growth", "factor": 1.2, "models": ["llama-3.1-8b"]},
                    ],
                    "time_limit_s": 10,
                }
            ]
        },
    )

    changes: list[Change] = Field(
        min_length=1,
        max_length=MAX_CHANGES,
        description="price_shock, region_lost, provider_lost, demand_growth, new_offer, slo, residency, "
        "redundancy, spot_cap, budget or restrict; applied in order.",
    )
    time_limit_s: float = Field(
        default=10.0,
        ge=MIN_TIME_LIMIT_S,
        le=MAX_TIME_LIMIT_S,
        description="Seconds each solve may take (the base is solved too when no stored plan is current).",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="The solver's random seed.")
    base: BaseChoice = Field(
        default=BaseChoice.CURRENT,
        description="current: the current stored plan, else the running fleet, else the live state solved "
        "without the changes; solved: always the latter (the change's own effect).",
    )


class PlanFiguresOut(BaseModel):
    status: str = Field(
        description="The solver's status (optimal, feasible, kept, infeasible, no_plan), or current_fleet."
    )
    source: str = Field(description="plan (a stored plan), fleet (the running fleet) or solved (here).")
    plan_id: int | None = Field(description="The stored plan standing for the base; else null.")
    cost_usd_per_hour: float | None
    cost_usd_per_month: float | None = Field(description="Per hour x 730.")
    lower_bound_usd_per_hour: float | None = Field(description="Proven lower bound of cost plus churn.")
    gap: float | None = Field(description="(cost + churn - bound) / (cost + churn).")
    replicas: int | None
    instances: int | None
    gpus: int | None
    spot_gpu_share: float | None
    wall_time_s: float
    diagnosis: list[str] = Field(description="Why there is no plan, one finding a line; empty with a plan.")

    @classmethod
    def of(cls, figures: PlanFigures) -> PlanFiguresOut:
        return cls(
            status=figures.status,
            source=figures.source.value,
            plan_id=figures.plan_id,
            cost_usd_per_hour=usd(figures.cost_micro_usd_per_hour),
            cost_usd_per_month=usd(figures.cost_micro_usd_per_month),
            lower_bound_usd_per_hour=usd(figures.lower_bound_micro_usd_per_hour),
            gap=figures.gap,
            replicas=figures.replicas,
            instances=figures.instances,
            gpus=figures.gpus,
            spot_gpu_share=figures.spot_gpu_share,
            wall_time_s=round(figures.wall_time_s, 3),
            diagnosis=list(figures.diagnosis),
        )


class CostDeltaOut(BaseModel):
    name: str = Field(description="The model or team; (idle) for GPUs bought that no replica uses.")
    team: str | None
    base_usd_per_hour: float
    variant_usd_per_hour: float
    delta_usd_per_hour: float
    base_replicas: int | None = None
    variant_replicas: int | None = None

    @classmethod
    def of(cls, delta: CostDelta) -> CostDeltaOut:
        return cls(
            name=delta.name,
            team=delta.team,
            base_usd_per_hour=usd(delta.base_micro_usd_per_hour) or 0.0,
            variant_usd_per_hour=usd(delta.variant_micro_usd_per_hour) or 0.0,
            delta_usd_per_hour=usd(delta.delta_micro_usd_per_hour) or 0.0,
            base_replicas=delta.base_replicas,
            variant_replicas=delta.variant_replicas,
        )


class Comparison(BaseModel):
    delta_usd_per_hour: float
    delta_usd_per_month: float
    delta_share: float | None = Field(description="Delta over the base cost (0.1: 10% dearer).")
    replicas_moved: int = Field(description="Replicas of the base not on the same offer in the variant.")
    replicas_added: int = Field(description="Replicas of the variant not on the same offer in the base.")
    models: list[CostDeltaOut] = Field(description="Per model (and (idle)); they add up to the totals.")
    teams: list[CostDeltaOut] = Field(description="Per team (and (idle)); they add up to the totals.")


class WhatIfResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "feasible",
                    "has_plan": True,
                    "changes": ["prices x1.3 provider aws"],
                    "base": {
                        "status": "feasible",
                        "source": "plan",
                        "plan_id": 12,
                        "cost_usd_per_hour": 380.5,
                        "cost_usd_per_month": 277765.0,
                        "lower_bound_usd_per_hour": 376.1,
                        "gap": 0.0116,
                        "replicas": 120,
                        "instances": 44,
                        "gpus": 352,
                        "spot_gpu_share": 0.1,
                        "wall_time_s": 0.0,
                        "diagnosis": [],
                    },
                    "variant": {
                        "status": "feasible",
                        "source": "solved",
                        "plan_id": None,
                        "cost_usd_per_hour": 401.2,
                        "cost_usd_per_month": 292876.0,
                        "lower_bound_usd_per_hour": 395.0,
                        "gap": 0.0155,
                        "replicas": 120,
                        "instances": 45,
                        "gpus": 360,
                        "spot_gpu_share": 0.1,
                        "wall_time_s": 9.8,
                        "diagnosis": [],
                    },
                    "comparison": {
                        "delta_usd_per_hour": 20.7,
                        "delta_usd_per_month": 15111.0,
                        "delta_share": 0.0544,
                        "replicas_moved": 18,
                        "replicas_added": 18,
                        "models": [
                            {
                                "name": "llama-3.1-8b",
                                "team": "chat",
                                "base_usd_per_hour": 80.0,
                                "variant_usd_per_hour": 86.0,
                                "delta_usd_per_hour": 6.0,
                                "base_replicas": 40,
                                "variant_replicas": 40,
                            }
                        ],
                        "teams": [
                            {
                                "name": "chat",
                                "team": "chat",
                                "base_usd_per_hour": 120.0,
                                "variant_usd_per_hour": 129.0,
                                "delta_usd_per_hour": 9.0,
                            }
                        ],
                    },
                    "reasons": [],
                    "prices_observed_to": "2026-12-01T12:00:00Z",
                }
            ]
        }
    )

    status: str = Field(description="The variant's status; infeasible and no_plan come with reasons.")
    has_plan: bool = Field(description="Whether the variant has a plan.")
    changes: list[str] = Field(description="What each change does, in order.")
    base: PlanFiguresOut = Field(description="The current plan: a stored one when current, else solved.")
    variant: PlanFiguresOut
    comparison: Comparison | None = Field(description="Variant against base; null when either has no plan.")
    reasons: list[str] = Field(description="The diagnosis when the variant has no plan (else empty).")
    prices_observed_to: dt.datetime | None = Field(description="Newest price observation of the snapshot.")

    @classmethod
    def of(cls, outcome: WhatIfOutcome) -> WhatIfResponse:
        comparison = None
        delta = outcome.delta_micro_usd_per_hour
        if delta is not None and outcome.replicas_moved is not None and outcome.replicas_added is not None:
            comparison = Comparison(
                delta_usd_per_hour=usd(delta) or 0.0,
                delta_usd_per_month=usd(delta * 730) or 0.0,
                delta_share=outcome.delta_share,
                replicas_moved=outcome.replicas_moved,
                replicas_added=outcome.replicas_added,
                models=[CostDeltaOut.of(d) for d in outcome.models],
                teams=[CostDeltaOut.of(d) for d in outcome.teams],
            )
        return cls(
            status=outcome.variant.status,
            has_plan=outcome.variant.has_plan,
            changes=list(outcome.changes),
            base=PlanFiguresOut.of(outcome.base),
            variant=PlanFiguresOut.of(outcome.variant),
            comparison=comparison,
            reasons=list(outcome.variant.diagnosis),
            prices_observed_to=outcome.prices_observed_to,
        )


def _field_errors(exc: WhatIfError) -> list[FieldError]:
    errors = []
    for line in exc.problems:
        match = _POSITION.match(line)
        field = f"body.changes.{match.group(1)}" if match else "body.changes"
        errors.append(FieldError(field=field, message=line[match.end() :] if match else line))
    return errors


@router.post(
    "",
    summary="Solve the live state with changes and compare it with the current plan (nothing is stored)",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def post_what_if(
    database: DatabaseDep,
    caller: ViewerDep,
    body: Annotated[WhatIfRequest, Body()],
) -> WhatIfResponse:
    """Applies the changes in order to the planning snapshot of the database (offers, fleet, workloads,
    demand, policy), solves it within ``time_limit_s`` and compares the result with the base: by default
    the current plan (the newest stored plan computed from exactly this state), else the running fleet,
    else the state solved here without the changes (``base: solved`` always solves it). A change naming
    an unknown region, provider, model, source or team is 422 naming it; a change that leaves no plan
    possible is 200 with ``status`` infeasible and the ``reasons``."""
    try:
        outcome = what_if(
            database,
            body.changes,
            time_limit_s=body.time_limit_s,
            now=dt.datetime.now(dt.UTC),
            seed=body.seed,
            base=body.base,
        )
    except WhatIfError as exc:
        raise ApiProblem(
            422, f"a change does not fit the live state: {exc}", errors=_field_errors(exc)
        ) from exc
    return WhatIfResponse.of(outcome)
