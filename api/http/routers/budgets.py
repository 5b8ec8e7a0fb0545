"""Monthly budgets, global and per team: ``/v1/budgets``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response

from api.http.deps import ApproverDep, SessionDep, ViewerDep
from api.http.etag import CREATED, WITH_ETAG, require_if_match, set_etag, workload_problems
from api.http.merge_patch import PATCH_DESCRIPTION, patched
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from api.http.schemas.workloads import BUDGET_EXAMPLE, BudgetOut, body_examples
from scheduler.services import workloads
from solver.fleetspec import BudgetSpec

router = APIRouter(prefix="/budgets", tags=["workloads"])

EntityId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The budget's id.")]
IfMatch = Annotated[str, Depends(require_if_match)]
BudgetBody = Annotated[
    BudgetSpec, Body(openapi_examples=body_examples("The chat team's monthly budget", BUDGET_EXAMPLE))
]
READ_ONLY = {"id", "updated_at"}
PatchBody = Annotated[
    dict[str, Any],
    Body(
        description=PATCH_DESCRIPTION,
        openapi_examples=body_examples("A partial change", {"limit_usd_per_month": "1300000"}),
    ),
]
WRITE_PROBLEMS = (*COMMON_PROBLEMS, 404, 409, 412, 428)


@router.get("", summary="List budgets", responses=problem_responses(*COMMON_PROBLEMS))
def list_budgets(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
) -> Page[BudgetOut]:
    rows = workloads.list_budgets(session, limit=page.limit + 1, offset=page.offset)
    return Page.of([BudgetOut.model_validate(row) for row in rows], page)


@router.get(
    "/{budget_id}",
    summary="One budget (and its ETag)",
    responses={**WITH_ETAG, **problem_responses(*COMMON_PROBLEMS, 404)},
)
def get_budget(budget_id: EntityId, session: SessionDep, caller: ViewerDep, response: Response) -> BudgetOut:
    with workload_problems():
        view = workloads.get_budget(session, budget_id)
    set_etag(response, view)
    return BudgetOut.model_validate(view)


@router.post(
    "",
    status_code=201,
    summary="Create a budget (one global, one per team)",
    responses={**CREATED, **problem_responses(*COMMON_PROBLEMS, 409)},
)
def create_budget(
    body: BudgetBody, session: SessionDep, caller: ApproverDep, response: Response
) -> BudgetOut:
    with workload_problems():
        view = workloads.create_budget(session, body, actor=caller.name, now=dt.datetime.now(dt.UTC))
    session.commit()
    set_etag(response, view)
    response.headers["Location"] = f"/v1/budgets/{view['id']}"
    return BudgetOut.model_validate(view)


@router.put(
    "/{budget_id}",
    summary="Replace a budget (needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def update_budget(
    budget_id: EntityId,
    body: BudgetBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> BudgetOut:
    with workload_problems():
        view = workloads.update_budget(
            session, budget_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return BudgetOut.model_validate(view)


@router.patch(
    "/{budget_id}",
    summary="Change some fields of a budget (a JSON merge patch; needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def patch_budget(
    budget_id: EntityId,
    patch: PatchBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> BudgetOut:
    with workload_problems():
        workloads.lock_workloads(session)
        current = workloads.get_budget(session, budget_id)
        workloads.check_tag("budget", budget_id, current, if_match)
        body = patched(current, patch, read_only=READ_ONLY, body_type=BudgetSpec)
        view = workloads.update_budget(
            session, budget_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return BudgetOut.model_validate(view)


@router.delete(
    "/{budget_id}",
    status_code=204,
    summary="Delete a budget (needs If-Match)",
    responses=problem_responses(*WRITE_PROBLEMS),
)
def delete_budget(
    budget_id: EntityId, if_match: IfMatch, session: SessionDep, caller: ApproverDep
) -> Response:
    with workload_problems():
        workloads.delete_budget(session, budget_id, if_match=if_match, actor=caller.name)
    session.commit()
    return Response(status_code=204)
