"""Request and response bodies of ``/v1/plans``, ``/v1/plan-jobs`` and ``/v1/fleet``.

Money is given twice: USD per hour as a JSON number (``..._usd_per_hour``) and the exact integer
micro-USD (``..._micro_usd_per_hour``); times are ISO 8601 UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scheduler.db.models import ActionKind, ActionStatus, PlanStatus, SolveJobStatus
from scheduler.services import solvequeue
from scheduler.services.planfile import PlacementEntry
from solver.domain import Route
from solver.result import Explanation
from solver.units import micro_to_usd

MAX_SEED = 2**31 - 1


def usd(micro: int | None) -> float | None:
    return float(micro_to_usd(micro)) if micro is not None else None


# -------------------------------------------------------------------------------------------- bodies


class CreatePlanBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"time_limit_s": 30, "notes": "after the December price update"}]},
    )

    # strict: JSON's false is not 0 and "30" is not 30, as the schema says (schemathesis checks it)
    time_limit_s: float = Field(
        default=30.0,
        strict=True,
        ge=solvequeue.MIN_TIME_LIMIT_S,
        le=solvequeue.MAX_TIME_LIMIT_S,
        description="The solve's time limit in seconds, 1..600.",
    )
    seed: int = Field(default=0, strict=True, ge=0, le=MAX_SEED, description="Random seed of the search.")
    notes: str | None = Field(default=None, max_length=2000, description="Why the plan is asked for.")


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "wait for Q1"}]})

    reason: str = Field(default="", max_length=1000, description="Why (written to the audit log).")


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"resume": False}]})

    resume: bool = Field(
        default=False,
        strict=True,
        description="Finish an interrupted or partial apply (a plan applying, partially applied or failed).",
    )


# --------------------------------------------------------------------------------------------- plans


class PlanSummaryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "state": "pending_approval",
                    "state_reason": "asked for through the API (solve job 3)",
                    "created_at": "2026-12-03T14:00:00Z",
                    "created_by": "alice",
                    "trigger": "api",
                    "cost_usd_per_hour": 812.4,
                    "cost_micro_usd_per_hour": 812400000,
                    "cost_delta_usd_per_hour": -41.2,
                    "replicas_moved": 3,
                }
            ]
        }
    )

    id: int
    state: PlanStatus
    state_reason: str | None = Field(description="Why the plan is in its state.")
    created_at: dt.datetime
    created_by: str = Field(description="The plan's author (it may not approve it).")
    trigger: str = Field(description="Why it was made: api, manual, rebalance, preemption, capacity, ...")
    cost_usd_per_hour: float
    cost_micro_usd_per_hour: int
    cost_delta_usd_per_hour: float | None = Field(description="Against the fleet it was computed from.")
    replicas_moved: int | None


class CoverageOut(BaseModel):
    slo: float = Field(description="Share of demand servable within its latency SLO and residency.")
    residency: float = Field(description="Share of demand servable in allowed jurisdictions.")
    redundancy: float = Field(description="Share of models with a redundancy rule that keep it.")


class OfferChangeOut(BaseModel):
    offer_key: str
    provider: str
    purchase_option: str
    price_usd_per_hour: float = Field(description="Per instance-hour.")
    before: int = Field(description="Instances the fleet runs on the offer.")
    after: int = Field(description="Instances the plan wants there.")
    launch: int
    keep: int
    terminate: int


class PlanDiffOut(BaseModel):
    offers: list[OfferChangeOut]
    replicas_moved: dict[str, int] = Field(description="Per model: replicas no longer where the fleet runs.")
    replicas_moved_total: int
    replicas_current: int
    instances_to_launch: int
    instances_to_terminate: int
    cost_before_usd_per_hour: float
    cost_after_usd_per_hour: float
    cost_delta_usd_per_hour: float
    cost_delta_usd_per_month: float
    coverage_before: CoverageOut
    coverage_after: CoverageOut
    regressions: list[str] = Field(description="Coverage the plan loses against the fleet, one line each.")


class ActionOut(BaseModel):
    seq: int
    kind: ActionKind
    subject: str = Field(description="The offer (launch), the instance (terminate) or the routing table.")
    status: ActionStatus
    attempts: int
    error: str | None
    instances: int


class PlanEventOut(BaseModel):
    at: dt.datetime
    actor: str
    action: str = Field(description="plan.created, plan.approved, plan.applying, ...")
    reason: str
    details: dict[str, Any]


class PlanOut(PlanSummaryOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "state": "approved",
                    "state_reason": "approved by bob",
                    "created_at": "2026-12-03T14:00:00Z",
                    "created_by": "alice",
                    "trigger": "api",
                    "cost_usd_per_hour": 98.0,
                    "cost_micro_usd_per_hour": 98000000,
                    "cost_delta_usd_per_hour": 98.0,
                    "replicas_moved": 0,
                    "solver_status": "feasible",
                    "lower_bound_usd_per_hour": 95.1,
                    "gap": 0.03,
                    "wall_time_s": 9.8,
                    "problem_hash": "3f1c...",
                    "decided_by": "bob",
                    "decided_at": "2026-12-03T14:05:00Z",
                    "applied_at": None,
                    "superseded_by": None,
                    "prices_observed_to": "2026-12-01T12:00:00+00:00",
                    "solve_job_id": 3,
                    "notes": "after the December price update",
                    "placements": [
                        {
                            "offer_key": "aws/us-east-1/-/p5.48xlarge/on_demand",
                            "provider": "aws",
                            "region": "us-east-1",
                            "zone": "",
                            "instance_type": "p5.48xlarge",
                            "gpu_type": "H100",
                            "gpus_per_instance": 8,
                            "purchase_option": "on_demand",
                            "term": None,
                            "upfront": None,
                            "instances": 1,
                            "committed_instances": 0,
                            "price_usd_per_hour": 98.0,
                            "price_micro_usd_per_hour": 98000000,
                            "cost_usd_per_hour": 98.0,
                            "cost_micro_usd_per_hour": 98000000,
                            "replicas": {"chat-8b": 8},
                        }
                    ],
                    "routes": [
                        {"model": "chat-8b", "source": "us-east", "region": "aws/us-east-1", "share": 1}
                    ],
                    "explanations": [],
                    "diff": None,
                    "actions": [],
                }
            ]
        }
    )

    solver_status: str
    lower_bound_usd_per_hour: float | None
    gap: float | None
    wall_time_s: float | None
    problem_hash: str | None = Field(description="SHA-256 of the problem: equal hashes, equal inputs.")
    decided_by: str | None
    decided_at: dt.datetime | None
    applied_at: dt.datetime | None
    superseded_by: int | None
    prices_observed_to: str | None
    solve_job_id: int | None = Field(description="The solve job that made it (plans asked for here).")
    notes: str | None
    placements: list[PlacementEntry]
    routes: list[Route] = Field(description="Share of each source's traffic per model to each region.")
    explanations: list[Explanation]
    diff: PlanDiffOut | None = Field(description="Against the fleet the plan was computed from.")
    actions: list[ActionOut] = Field(description="The apply's actions, once it is applied.")


class PlanHistoryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan_id": 7,
                    "events": [
                        {
                            "at": "2026-12-03T14:00:00Z",
                            "actor": "alice",
                            "action": "plan.created",
                            "reason": "",
                            "details": {"trigger": "api"},
                        }
                    ],
                }
            ]
        }
    )

    plan_id: int
    events: list[PlanEventOut]


class ApplyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan_id": 7,
                    "state": "applied",
                    "finished": True,
                    "actions_succeeded": 15,
                    "actions": [],
                    "seconds": 1.8,
                    "capacity_failures": {},
                    "detail": "15 of 15 actions succeeded",
                }
            ]
        }
    )

    plan_id: int
    state: PlanStatus = Field(description="applied, partially_applied, failed; applying when stopped.")
    finished: bool = Field(description="False: stopped at the time bound; POST again with resume.")
    actions_succeeded: int
    actions: list[ActionOut]
    seconds: float
    capacity_failures: dict[str, list[str]] = Field(
        description="Offer key -> models whose launch there ran out of capacity."
    )
    detail: str


# ------------------------------------------------------------------------------------------ routing


class RegionWeightOut(BaseModel):
    region: str = Field(description="Region key, provider/code.")
    provider: str
    region_code: str
    share: float = Field(description="Of the group's traffic, to the millionth; sums to 1 per group.")
    weight_percent: int = Field(description="Whole percent; sums to 100 per group.")


class ModelRoutingOut(BaseModel):
    model: str
    tokens_per_s: float
    regions: list[RegionWeightOut]


class SourceRoutingOut(BaseModel):
    source: str
    country: str
    lat: float
    lon: float
    tokens_per_s: float = Field(description="The source's demand across its models.")
    regions: list[RegionWeightOut] = Field(description="All models together, weighted by their demand.")
    models: list[ModelRoutingOut]


class RoutingTableOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan_id": 7,
                    "plan_state": "approved",
                    "sources": [
                        {
                            "source": "eu-central",
                            "country": "DE",
                            "lat": 50.11,
                            "lon": 8.68,
                            "tokens_per_s": 60000,
                            "regions": [
                                {
                                    "region": "aws/eu-central-1",
                                    "provider": "aws",
                                    "region_code": "eu-central-1",
                                    "share": 0.75,
                                    "weight_percent": 75,
                                },
                                {
                                    "region": "gcp/europe-west4",
                                    "provider": "gcp",
                                    "region_code": "europe-west4",
                                    "share": 0.25,
                                    "weight_percent": 25,
                                },
                            ],
                            "models": [],
                        }
                    ],
                }
            ]
        }
    )

    plan_id: int
    plan_state: PlanStatus
    sources: list[SourceRoutingOut]


# --------------------------------------------------------------------------------------------- jobs


class PlanJobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "status": "done",
                    "requested_by": "alice",
                    "requested_at": "2026-12-03T14:00:00Z",
                    "time_limit_s": 30,
                    "notes": "after the December price update",
                    "attempts": 1,
                    "started_at": "2026-12-03T14:00:01Z",
                    "heartbeat_at": "2026-12-03T14:00:31Z",
                    "finished_at": "2026-12-03T14:00:31Z",
                    "plan_id": 7,
                    "plan_url": "/v1/plans/7",
                    "solver_status": "feasible",
                    "error": None,
                    "diagnosis": {"reason": "plan", "solver_status": "feasible", "explanations": []},
                }
            ]
        }
    )

    id: int
    status: SolveJobStatus = Field(description="queued, running, done (see plan_id) or failed (see error).")
    requested_by: str
    requested_at: dt.datetime
    time_limit_s: float
    notes: str | None
    attempts: int = Field(description="Claims by workers so far (a dead worker's job is claimed again).")
    started_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    finished_at: dt.datetime | None
    plan_id: int | None
    plan_url: str | None = Field(description="The plan, once the job is done.")
    solver_status: str | None
    error: str | None = Field(description="Why the job failed, one line.")
    diagnosis: dict[str, Any] | None = Field(
        description="The solver status, explanations (for an infeasible problem, which rules conflict) "
        "and offers left out; or why there was nothing to plan."
    )


# -------------------------------------------------------------------------------------------- fleet


class FleetOfferOut(BaseModel):
    offer_key: str
    provider: str
    purchase_option: str
    gpu_type: str
    gpus_per_instance: int
    instances: int
    price_usd_per_hour: float = Field(description="Per instance-hour, the offer's latest price.")
    cost_usd_per_hour: float
    cost_micro_usd_per_hour: int
    replicas: dict[str, int]


class FleetOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "instances": 1,
                    "cost_usd_per_hour": 98.0,
                    "cost_micro_usd_per_hour": 98000000,
                    "replicas": {"chat-8b": 8},
                    "offers": [
                        {
                            "offer_key": "aws/us-east-1/-/p5.48xlarge/on_demand",
                            "provider": "aws",
                            "purchase_option": "on_demand",
                            "gpu_type": "H100",
                            "gpus_per_instance": 8,
                            "instances": 1,
                            "price_usd_per_hour": 98.0,
                            "cost_usd_per_hour": 98.0,
                            "cost_micro_usd_per_hour": 98000000,
                            "replicas": {"chat-8b": 8},
                        }
                    ],
                }
            ]
        }
    )

    instances: int
    cost_usd_per_hour: float = Field(description="At the offers' latest prices (commitments aside).")
    cost_micro_usd_per_hour: int
    replicas: dict[str, int] = Field(description="Replicas per model.")
    offers: list[FleetOfferOut]
