"""``/v1/plans``: list, read and export plans, ask for one (a background solve), and move plans through
their lifecycle (approve, reject, apply, cancel).

The work is ``scheduler.services.plans`` (lifecycle, four-eyes, staleness), ``scheduler.services.apply``
(the apply engine), ``scheduler.services.solvequeue`` (the shared queue of solves) and
``scheduler.services.planexport`` (plan file, routing table). Every write is audited with the key's
owner as the actor.

Apply runs inside the request, bounded by ``GPUPLAN_API_APPLY_MAX_S``: on the simulated cloud an apply
takes seconds. When the bound is reached the apply stops between two actions (the plan stays applying,
its lease released) and the answer is 202: ``POST .../apply`` with ``{"resume": true}`` (or the
scheduler's apply job) finishes it.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BeforeValidator

from api.http.deps import ApproverDep, DatabaseDep, SessionDep, SettingsDep, ViewerDep
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, ApiProblem, FieldError, problem_responses
from api.http.routers.plan_jobs import job_out
from api.http.schemas.plans import (
    ActionOut,
    ApplyBody,
    ApplyOut,
    CoverageOut,
    CreatePlanBody,
    ModelRoutingOut,
    OfferChangeOut,
    PlanDiffOut,
    PlanEventOut,
    PlanHistoryOut,
    PlanJobOut,
    PlanOut,
    PlanSummaryOut,
    RegionWeightOut,
    RejectBody,
    RoutingTableOut,
    SourceRoutingOut,
    usd,
)
from scheduler.db.models import PlanStatus
from scheduler.services import apply as apply_service
from scheduler.services import planexport, solvequeue
from scheduler.services import plans as plan_service
from scheduler.services.apply import ActionOutcome
from scheduler.services.engine import build_engine, process_holder
from scheduler.services.plandiff import PlanDiff
from scheduler.services.planfile import PlanFile
from solver.problem import SolveParams

router = APIRouter(prefix="/plans", tags=["plans"])

MAX_ID = 2**31 - 1
PlanId = Annotated[int, Path(ge=1, le=MAX_ID, description="Plan id.")]
CSV = "text/csv"


_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_datetime(value: object) -> object:
    """Only ISO 8601 date-times (pydantic would also read a number as a Unix time)."""
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError("must be an ISO 8601 date-time with an offset, e.g. 2026-12-01T00:00:00Z")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ----------------------------------------------------------------------------------------- converters


def summary_out(summary: plan_service.PlanSummary) -> PlanSummaryOut:
    return PlanSummaryOut(
        id=summary.id,
        state=summary.status,
        state_reason=summary.status_reason,
        created_at=summary.created_at,
        created_by=summary.created_by,
        trigger=summary.trigger,
        cost_usd_per_hour=usd(summary.cost_micro_usd_per_hour) or 0.0,
        cost_micro_usd_per_hour=summary.cost_micro_usd_per_hour,
        cost_delta_usd_per_hour=usd(summary.cost_delta_micro_usd_per_hour),
        replicas_moved=summary.replicas_moved,
    )


def diff_out(diff: PlanDiff) -> PlanDiffOut:
    return PlanDiffOut(
        offers=[
            OfferChangeOut(
                offer_key=change.offer_key,
                provider=change.provider,
                purchase_option=change.purchase_option,
                price_usd_per_hour=usd(change.price_micro_usd_per_hour) or 0.0,
                before=change.before,
                after=change.after,
                launch=change.launch,
                keep=change.keep,
                terminate=change.terminate,
            )
            for change in diff.offers
        ],
        replicas_moved=diff.replicas_moved,
        replicas_moved_total=diff.moved_total,
        replicas_current=diff.replicas_current,
        instances_to_launch=diff.instances_to_launch,
        instances_to_terminate=diff.instances_to_terminate,
        cost_before_usd_per_hour=usd(diff.cost_before_micro_usd_per_hour) or 0.0,
        cost_after_usd_per_hour=usd(diff.cost_after_micro_usd_per_hour) or 0.0,
        cost_delta_usd_per_hour=usd(diff.cost_delta_micro_usd_per_hour) or 0.0,
        cost_delta_usd_per_month=usd(diff.cost_delta_micro_usd_per_month) or 0.0,
        coverage_before=CoverageOut(**diff.coverage_before.model_dump()),
        coverage_after=CoverageOut(**diff.coverage_after.model_dump()),
        regressions=diff.regressions(),
    )


def action_out(outcome: ActionOutcome) -> ActionOut:
    return ActionOut(
        seq=outcome.seq,
        kind=outcome.kind,
        subject=outcome.subject,
        status=outcome.status,
        attempts=outcome.attempts,
        error=outcome.error,
        instances=outcome.instances,
    )


def _utc(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise ApiProblem(
            422,
            f"{field}: {value.isoformat()} is out of range",
            errors=[FieldError(field=f"query.{field}", message="out of range")],
        ) from None


# ---------------------------------------------------------------------------------------------- reads


@router.get(
    "",
    summary="List plans, newest first",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def list_plans(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
    state: Annotated[PlanStatus | None, Query(description="Only plans in this state.")] = None,
    author: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only plans made by this author.")
    ] = None,
    created_after: Annotated[
        IsoDatetime | None, Query(description="Created at or after (ISO 8601 with offset).")
    ] = None,
    created_before: Annotated[
        IsoDatetime | None, Query(description="Created before (ISO 8601 with offset).")
    ] = None,
) -> Page[PlanSummaryOut]:
    after = _utc(created_after, "created_after")
    before = _utc(created_before, "created_before")
    summaries = plan_service.list_plans(
        session,
        status=state,
        limit=page.limit + 1,
        offset=page.offset,
        author=author,
        created_after=after,
        created_before=before,
    )
    return Page[PlanSummaryOut].of([summary_out(s) for s in summaries], page)


@router.get(
    "/{plan_id}",
    summary="One plan: placements, routing, explanations, its diff against the fleet and its actions",
    responses=problem_responses(*COMMON_PROBLEMS, 404),
)
def get_plan(plan_id: PlanId, session: SessionDep, caller: ViewerDep) -> PlanOut:
    detail = plan_service.plan_detail(session, plan_id)
    document = planexport.stored_plan_file(session, plan_id)
    job = solvequeue.job_for_plan(session, plan_id)
    outcomes = apply_service.action_outcomes(session, plan_id)
    summary = summary_out(detail.summary)
    return PlanOut(
        **summary.model_dump(),
        solver_status=detail.solver_status,
        lower_bound_usd_per_hour=usd(detail.lower_bound_micro_usd_per_hour),
        gap=detail.gap,
        wall_time_s=detail.wall_time_ms / 1000 if detail.wall_time_ms is not None else None,
        problem_hash=detail.problem_hash,
        decided_by=detail.decided_by,
        decided_at=detail.decided_at,
        applied_at=detail.applied_at,
        superseded_by=detail.superseded_by,
        prices_observed_to=detail.prices_observed_to,
        solve_job_id=job.id if job is not None else None,
        notes=job.notes if job is not None else None,
        placements=list(document.placements),
        routes=list(document.routes),
        explanations=[entry.to_explanation() for entry in document.explanations],
        diff=diff_out(detail.diff) if detail.diff is not None else None,
        actions=[action_out(o) for o in outcomes],
    )


@router.get(
    "/{plan_id}/history",
    summary="A plan's audit trail: who moved it to which state, when and why",
    responses=problem_responses(*COMMON_PROBLEMS, 404),
)
def plan_history(plan_id: PlanId, session: SessionDep, caller: ViewerDep) -> PlanHistoryOut:
    plan_service.get_plan(session, plan_id)
    events = [
        PlanEventOut(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            reason=str((entry.details or {}).get("reason") or ""),
            details=dict(entry.details or {}),
        )
        for entry in plan_service.plan_history(session, plan_id)
    ]
    return PlanHistoryOut(plan_id=plan_id, events=events)


@router.get(
    "/{plan_id}/plan-file",
    summary="The plan file (docs/formats.md, 'Plan file') of a stored plan",
    responses=problem_responses(*COMMON_PROBLEMS, 404),
)
def plan_file(plan_id: PlanId, session: SessionDep, caller: ViewerDep) -> PlanFile:
    return planexport.stored_plan_file(session, plan_id)


class RoutingFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


_CSV_EXAMPLE = (
    "plan_id,source,source_country,source_lat,source_lon,model,region,provider,region_code,share,"
    "weight_percent,tokens_per_s\n"
    "7,eu-central,DE,50.11,8.68,*,aws/eu-central-1,aws,eu-central-1,0.750000,75,60000\n"
    "7,eu-central,DE,50.11,8.68,*,gcp/europe-west4,gcp,europe-west4,0.250000,25,60000\n"
    "7,eu-central,DE,50.11,8.68,chat-8b,aws/eu-central-1,aws,eu-central-1,0.750000,75,60000\n"
    "7,eu-central,DE,50.11,8.68,chat-8b,gcp/europe-west4,gcp,europe-west4,0.250000,25,60000\n"
)


@router.get(
    "/{plan_id}/routing",
    summary="The routing table for a global load balancer: per demand source, regions and weights",
    description=(
        "Per demand source and model, the regions its traffic goes to with their weights (`share`, to "
        "the millionth, sums to 1; `weight_percent`, whole percent, sums to 100), and per source across "
        "its models (weighted by demand; model `*` in the CSV) for one shared endpoint. JSON by default; "
        "CSV with `?format=csv` or `Accept: text/csv` (columns: " + _CSV_EXAMPLE.splitlines()[0] + ")."
    ),
    response_model=RoutingTableOut,
    responses={
        200: {
            "content": {
                CSV: {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
            }
        },
        **problem_responses(*COMMON_PROBLEMS, 404),
    },
)
def routing(
    plan_id: PlanId,
    request: Request,
    session: SessionDep,
    caller: ViewerDep,
    fmt: Annotated[
        RoutingFormat | None,
        Query(alias="format", description="json or csv (default: from Accept, else json)."),
    ] = None,
) -> RoutingTableOut | Response:
    table = planexport.routing_table(session, plan_id)
    wanted = fmt or (
        RoutingFormat.CSV if CSV in request.headers.get("accept", "").lower() else RoutingFormat.JSON
    )
    if wanted is RoutingFormat.CSV:
        return Response(
            planexport.routing_csv(table),
            media_type=CSV,
            headers={"Content-Disposition": f'inline; filename="plan-{plan_id}-routing.csv"'},
        )

    def weights(regions: tuple[planexport.RegionWeight, ...]) -> list[RegionWeightOut]:
        return [
            RegionWeightOut(
                region=w.region,
                provider=w.provider,
                region_code=w.region_code,
                share=w.share,
                weight_percent=w.weight_percent,
            )
            for w in regions
        ]

    return RoutingTableOut(
        plan_id=table.plan_id,
        plan_state=table.plan_status,
        sources=[
            SourceRoutingOut(
                source=s.source,
                country=s.country,
                lat=s.lat,
                lon=s.lon,
                tokens_per_s=s.tokens_per_s,
                regions=weights(s.regions),
                models=[
                    ModelRoutingOut(model=m.model, tokens_per_s=m.tokens_per_s, regions=weights(m.regions))
                    for m in s.models
                ],
            )
            for s in table.sources
        ],
    )


# --------------------------------------------------------------------------------------------- writes


@router.post(
    "",
    status_code=202,
    summary="Ask for a plan of the fleet: the solve runs in the background; poll the job",
    description=(
        "Queues a solve of the whole fleet on the latest prices. The answer is the job (202) with "
        "`Location: /v1/plan-jobs/{id}`; poll it until it is `done` (its `plan_id` is the plan, pending "
        "approval) or `failed` (its `error` and `diagnosis` say why: infeasible, no plan in time, nothing "
        "to plan). Solves are shared by every API process through the database: each runs once."
    ),
    responses={
        202: {"headers": {"Location": {"description": "The job to poll.", "schema": {"type": "string"}}}},
        **problem_responses(*COMMON_PROBLEMS),
    },
)
def create_plan(
    body: CreatePlanBody,
    request: Request,
    response: Response,
    session: SessionDep,
    caller: ApproverDep,
) -> PlanJobOut:
    params = SolveParams(time_limit_s=body.time_limit_s, seed=body.seed)
    row = solvequeue.enqueue(session, actor=caller.name, params=params, notes=body.notes, now=_now())
    session.commit()
    workers = getattr(request.app.state, "solve_workers", None)
    if workers is not None:
        workers.wake()
    response.headers["Location"] = f"/v1/plan-jobs/{row.id}"
    return job_out(row)


@router.post(
    "/{plan_id}/approve",
    summary="Approve a plan pending approval (never by its author); a stale plan is marked so and refused",
    responses=problem_responses(*COMMON_PROBLEMS, 404, 409),
)
def approve(
    plan_id: PlanId, session: SessionDep, settings: SettingsDep, caller: ApproverDep
) -> PlanSummaryOut:
    row = plan_service.approve(session, plan_id, actor=caller.name, now=_now(), settings=settings)
    status = row.status
    session.commit()
    if status is PlanStatus.STALE:  # the stale mark is committed; now say so (409)
        plan_service.raise_if_stale(plan_service.get_plan(session, plan_id))
    return summary_out(plan_service.plan_detail(session, plan_id).summary)


@router.post(
    "/{plan_id}/reject",
    summary="Reject a plan not yet applying",
    responses=problem_responses(*COMMON_PROBLEMS, 404, 409),
)
def reject(
    plan_id: PlanId, session: SessionDep, caller: ApproverDep, body: RejectBody | None = None
) -> PlanSummaryOut:
    reason = body.reason.strip() if body is not None else ""
    plan_service.reject(session, plan_id, actor=caller.name, now=_now(), reason=reason)
    session.commit()
    return summary_out(plan_service.plan_detail(session, plan_id).summary)


@router.post(
    "/{plan_id}/cancel",
    summary="Cancel a plan: one not yet applying is rejected; an applying one sends no more actions",
    responses=problem_responses(*COMMON_PROBLEMS, 404, 409),
)
def cancel(plan_id: PlanId, session: SessionDep, caller: ApproverDep) -> PlanSummaryOut:
    apply_service.cancel(session, plan_id, actor=caller.name, now=_now())
    session.commit()
    return summary_out(plan_service.plan_detail(session, plan_id).summary)


def _apply_lock(request: Request) -> threading.Lock:
    lock: threading.Lock = request.app.state.apply_lock
    return lock


@router.post(
    "/{plan_id}/apply",
    summary="Apply an approved plan (launch, shift routing, terminate) on what applies plans",
    description=(
        "Runs the apply engine in the request, on the simulated cloud unless `GPUPLAN_PROVISIONER=cloud`. "
        "200 when it ended: `applied`, or `partially_applied` / `failed` with the actions that did not "
        "succeed. 202 when it reached `GPUPLAN_API_APPLY_MAX_S`: it stopped between two actions, the plan "
        'is still `applying`; POST again with `{"resume": true}` to finish it. A plan not approved, '
        "stale, or being applied elsewhere is 409."
    ),
    responses={
        202: {"model": ApplyOut, "description": "Stopped at the time bound; resume to finish."},
        **problem_responses(*COMMON_PROBLEMS, 404, 409),
    },
)
def apply(
    plan_id: PlanId,
    request: Request,
    response: Response,
    database: DatabaseDep,
    settings: SettingsDep,
    caller: ApproverDep,
    body: ApplyBody | None = None,
) -> ApplyOut:
    resume = body.resume if body is not None else False
    engine = build_engine(database, settings)
    ctx = engine.context(holder=f"{process_holder()}:api")
    lock = _apply_lock(request)
    if not lock.acquire(timeout=settings.api_apply_max_s):
        raise ApiProblem(409, f"plan {plan_id}: another apply is running in this server; try again later")
    try:
        deadline = time.monotonic() + settings.api_apply_max_s
        ctx.should_stop = lambda: time.monotonic() > deadline
        report = apply_service.apply_plan(ctx, plan_id, actor=caller.name, resume=resume)
    finally:
        lock.release()
    finished = report.status is not PlanStatus.APPLYING
    if not finished:
        response.status_code = 202
    succeeded = report.succeeded
    detail = f"{succeeded} of {len(report.outcomes)} actions succeeded"
    if not finished:
        detail += f"; stopped after {settings.api_apply_max_s:g} s: resume to finish"
    return ApplyOut(
        plan_id=plan_id,
        state=report.status,
        finished=finished,
        actions_succeeded=succeeded,
        actions=[action_out(o) for o in report.outcomes],
        seconds=round(report.seconds, 3),
        capacity_failures=report.capacity_failures,
        detail=detail,
    )
