"""Demand sources (where users are, and their residency rules): ``/v1/demand-sources``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response

from api.http.deps import ApproverDep, SessionDep, ViewerDep
from api.http.etag import CREATED, WITH_ETAG, require_if_match, set_etag, workload_problems
from api.http.merge_patch import PATCH_DESCRIPTION, patched
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from api.http.schemas.workloads import SOURCE_EXAMPLE, DemandSourceOut, body_examples
from scheduler.services import workloads
from solver.domain import DemandSource
from solver.jurisdictions import jurisdictions_for

router = APIRouter(prefix="/demand-sources", tags=["workloads"])

EntityId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The demand source's id.")]
IfMatch = Annotated[str, Depends(require_if_match)]
DemandSourceBody = Annotated[
    DemandSource,
    Body(openapi_examples=body_examples("Users in Frankfurt whose traffic stays in the EU", SOURCE_EXAMPLE)),
]
READ_ONLY = {"id"}
PatchBody = Annotated[
    dict[str, Any],
    Body(
        description=PATCH_DESCRIPTION,
        openapi_examples=body_examples("A partial change", {"residency": ["EU", "CH"]}),
    ),
]
WRITE_PROBLEMS = (*COMMON_PROBLEMS, 404, 409, 412, 428)


@router.get("", summary="List demand sources", responses=problem_responses(*COMMON_PROBLEMS))
def list_demand_sources(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
) -> Page[DemandSourceOut]:
    rows = workloads.list_sources(session, limit=page.limit + 1, offset=page.offset)
    return Page.of([DemandSourceOut.model_validate(row) for row in rows], page)


@router.get(
    "/{source_id}",
    summary="One demand source (and its ETag)",
    responses={**WITH_ETAG, **problem_responses(*COMMON_PROBLEMS, 404)},
)
def get_source(
    source_id: EntityId, session: SessionDep, caller: ViewerDep, response: Response
) -> DemandSourceOut:
    with workload_problems():
        view = workloads.get_source(session, source_id)
    set_etag(response, view)
    return DemandSourceOut.model_validate(view)


@router.post(
    "",
    status_code=201,
    summary="Create a demand source",
    responses={**CREATED, **problem_responses(*COMMON_PROBLEMS, 409)},
)
def create_source(
    body: DemandSourceBody, session: SessionDep, caller: ApproverDep, response: Response
) -> DemandSourceOut:
    with workload_problems():
        view = workloads.create_source(session, body, actor=caller.name, now=dt.datetime.now(dt.UTC))
    session.commit()
    set_etag(response, view)
    response.headers["Location"] = f"/v1/demand-sources/{view['id']}"
    return DemandSourceOut.model_validate(view)


@router.put(
    "/{source_id}",
    summary="Replace a demand source (needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def update_source(
    source_id: EntityId,
    body: DemandSourceBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> DemandSourceOut:
    with workload_problems():
        view = workloads.update_source(
            session, source_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return DemandSourceOut.model_validate(view)


@router.patch(
    "/{source_id}",
    summary="Change some fields of a demand source (a JSON merge patch; needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def patch_source(
    source_id: EntityId,
    patch: PatchBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> DemandSourceOut:
    with workload_problems():
        workloads.lock_workloads(session)
        current = workloads.get_source(session, source_id)
        workloads.check_tag("demand source", source_id, current, if_match)
        # The country's own tags are derived again from the (maybe patched) country, not carried over.
        derived = jurisdictions_for(current["country"])
        current["jurisdictions"] = [tag for tag in current["jurisdictions"] if tag not in derived]
        body = patched(current, patch, read_only=READ_ONLY, body_type=DemandSource)
        view = workloads.update_source(
            session, source_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return DemandSourceOut.model_validate(view)


@router.delete(
    "/{source_id}",
    status_code=204,
    summary="Delete a demand source (needs If-Match; 409 while demand or plans refer to it)",
    responses=problem_responses(*WRITE_PROBLEMS),
)
def delete_source(
    source_id: EntityId, if_match: IfMatch, session: SessionDep, caller: ApproverDep
) -> Response:
    with workload_problems():
        workloads.delete_source(session, source_id, if_match=if_match, actor=caller.name)
    session.commit()
    return Response(status_code=204)
