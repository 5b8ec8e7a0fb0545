"""``/v1/plan-jobs``: the background solves ``POST /v1/plans`` queues, to poll until done or failed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.http.deps import SessionDep, ViewerDep
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from api.http.schemas.plans import PlanJobOut
from scheduler.db.models import SolveJobRow, SolveJobStatus
from scheduler.services import solvequeue

router = APIRouter(prefix="/plan-jobs", tags=["plans"])

JobId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Solve job id.")]


def job_out(row: SolveJobRow) -> PlanJobOut:
    return PlanJobOut(
        id=row.id,
        status=row.status,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        time_limit_s=row.time_limit_s,
        notes=row.notes,
        attempts=row.attempts,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
        plan_id=row.plan_id,
        plan_url=f"/v1/plans/{row.plan_id}" if row.plan_id is not None else None,
        solver_status=row.solver_status,
        error=row.error,
        diagnosis=row.diagnosis,
    )


@router.get("", summary="List solve jobs, newest first", responses=problem_responses(*COMMON_PROBLEMS))
def list_jobs(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
    status: Annotated[SolveJobStatus | None, Query(description="Only jobs in this status.")] = None,
) -> Page[PlanJobOut]:
    rows = solvequeue.list_jobs(session, status=status, limit=page.limit + 1, offset=page.offset)
    return Page[PlanJobOut].of([job_out(row) for row in rows], page)


@router.get(
    "/{job_id}",
    summary="One solve job: queued, running, done (with its plan) or failed (with the diagnosis)",
    responses=problem_responses(*COMMON_PROBLEMS, 404),
)
def get_job(job_id: JobId, session: SessionDep, caller: ViewerDep) -> PlanJobOut:
    return job_out(solvequeue.get_job(session, job_id))
