"""Demand, tokens/s of one model from one demand source: ``/v1/demand``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from api.http.deps import ApproverDep, SessionDep, ViewerDep
from api.http.etag import CREATED, WITH_ETAG, require_if_match, set_etag, workload_problems
from api.http.merge_patch import PATCH_DESCRIPTION, patched
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from api.http.schemas.workloads import DEMAND_EXAMPLE, DemandOut, body_examples
from scheduler.services import workloads
from solver.domain import Demand

router = APIRouter(prefix="/demand", tags=["workloads"])

EntityId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The demand's id.")]
IfMatch = Annotated[str, Depends(require_if_match)]
DemandBody = Annotated[
    Demand, Body(openapi_examples=body_examples("25,000 tokens/s of a model from one source", DEMAND_EXAMPLE))
]
READ_ONLY = {"id", "model_id", "source_id", "updated_at"}
PatchBody = Annotated[
    dict[str, Any],
    Body(
        description=PATCH_DESCRIPTION,
        openapi_examples=body_examples("A partial change", {"tokens_per_s": 30000}),
    ),
]
WRITE_PROBLEMS = (*COMMON_PROBLEMS, 404, 409, 412, 428)


@router.get("", summary="List demand", responses=problem_responses(*COMMON_PROBLEMS))
def list_demand(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
    model: Annotated[
        str | None, Query(max_length=200, description="Only this model's demand (its name).")
    ] = None,
    source: Annotated[
        str | None, Query(max_length=200, description="Only demand from this source (its name).")
    ] = None,
) -> Page[DemandOut]:
    rows = workloads.list_demand(
        session, model=model, source=source, limit=page.limit + 1, offset=page.offset
    )
    return Page.of([DemandOut.model_validate(row) for row in rows], page)


@router.get(
    "/{demand_id}",
    summary="One demand (and its ETag)",
    responses={**WITH_ETAG, **problem_responses(*COMMON_PROBLEMS, 404)},
)
def get_demand(demand_id: EntityId, session: SessionDep, caller: ViewerDep, response: Response) -> DemandOut:
    with workload_problems():
        view = workloads.get_demand(session, demand_id)
    set_etag(response, view)
    return DemandOut.model_validate(view)


@router.post(
    "",
    status_code=201,
    summary="Create a demand for a model from a source",
    responses={**CREATED, **problem_responses(*COMMON_PROBLEMS, 409)},
)
def create_demand(
    body: DemandBody, session: SessionDep, caller: ApproverDep, response: Response
) -> DemandOut:
    with workload_problems():
        view = workloads.create_demand(session, body, actor=caller.name, now=dt.datetime.now(dt.UTC))
    session.commit()
    set_etag(response, view)
    response.headers["Location"] = f"/v1/demand/{view['id']}"
    return DemandOut.model_validate(view)


@router.put(
    "/{demand_id}",
    summary="Replace a demand (needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def update_demand(
    demand_id: EntityId,
    body: DemandBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> DemandOut:
    with workload_problems():
        view = workloads.update_demand(
            session, demand_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return DemandOut.model_validate(view)


@router.patch(
    "/{demand_id}",
    summary="Change some fields of a demand (a JSON merge patch; needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def patch_demand(
    demand_id: EntityId,
    patch: PatchBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> DemandOut:
    with workload_problems():
        workloads.lock_workloads(session)
        current = workloads.get_demand(session, demand_id)
        workloads.check_tag("demand", demand_id, current, if_match)
        body = patched(current, patch, read_only=READ_ONLY, body_type=Demand)
        view = workloads.update_demand(
            session, demand_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return DemandOut.model_validate(view)


@router.delete(
    "/{demand_id}",
    status_code=204,
    summary="Delete a demand (needs If-Match)",
    responses=problem_responses(*WRITE_PROBLEMS),
)
def delete_demand(
    demand_id: EntityId, if_match: IfMatch, session: SessionDep, caller: ApproverDep
) -> Response:
    with workload_problems():
        workloads.delete_demand(session, demand_id, if_match=if_match, actor=caller.name)
    session.commit()
    return Response(status_code=204)
