"""Served models and their profiles per GPU type: ``/v1/models``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from api.http.deps import ApproverDep, SessionDep, ViewerDep
from api.http.etag import CREATED, WITH_ETAG, require_if_match, set_etag, workload_problems
from api.http.merge_patch import PATCH_DESCRIPTION, patched
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from api.http.schemas.workloads import MODEL_EXAMPLE, ModelOut, body_examples
from scheduler.services import workloads
from solver.domain import Model

router = APIRouter(prefix="/models", tags=["workloads"])

ModelId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The model's id.")]
IfMatch = Annotated[str, Depends(require_if_match)]
ModelBody = Annotated[Model, Body(openapi_examples=body_examples("A model served on H100", MODEL_EXAMPLE))]
READ_ONLY = {"id", "created_at", "updated_at"}
PatchBody = Annotated[
    dict[str, Any],
    Body(
        description=PATCH_DESCRIPTION,
        openapi_examples=body_examples("A partial change", {"latency_slo_ms": 1800, "max_spot_share": 0.4}),
    ),
]
WRITE_PROBLEMS = (*COMMON_PROBLEMS, 404, 409, 412, 428)


@router.get("", summary="List models", responses=problem_responses(*COMMON_PROBLEMS))
def list_models(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
    team: Annotated[str | None, Query(max_length=64, description="Only this team's models.")] = None,
) -> Page[ModelOut]:
    rows = workloads.list_models(session, team=team, limit=page.limit + 1, offset=page.offset)
    return Page.of([ModelOut.model_validate(row) for row in rows], page)


@router.get(
    "/{model_id}",
    summary="One model with its profiles (and its ETag)",
    responses={**WITH_ETAG, **problem_responses(*COMMON_PROBLEMS, 404)},
)
def get_model(model_id: ModelId, session: SessionDep, caller: ViewerDep, response: Response) -> ModelOut:
    with workload_problems():
        view = workloads.get_model(session, model_id)
    set_etag(response, view)
    return ModelOut.model_validate(view)


@router.post(
    "",
    status_code=201,
    summary="Create a model",
    responses={**CREATED, **problem_responses(*COMMON_PROBLEMS, 409)},
)
def create_model(body: ModelBody, session: SessionDep, caller: ApproverDep, response: Response) -> ModelOut:
    with workload_problems():
        view = workloads.create_model(session, body, actor=caller.name, now=dt.datetime.now(dt.UTC))
    session.commit()
    set_etag(response, view)
    response.headers["Location"] = f"/v1/models/{view['id']}"
    return ModelOut.model_validate(view)


@router.put(
    "/{model_id}",
    summary="Replace a model and its profiles (needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def update_model(
    model_id: ModelId,
    body: ModelBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> ModelOut:
    with workload_problems():
        view = workloads.update_model(
            session, model_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return ModelOut.model_validate(view)


@router.patch(
    "/{model_id}",
    summary="Change some fields of a model (a JSON merge patch; needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def patch_model(
    model_id: ModelId,
    patch: PatchBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> ModelOut:
    with workload_problems():
        workloads.lock_workloads(session)
        current = workloads.get_model(session, model_id)
        workloads.check_tag("model", model_id, current, if_match)
        body = patched(current, patch, read_only=READ_ONLY, body_type=Model)
        view = workloads.update_model(
            session, model_id, body, if_match=if_match, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    return ModelOut.model_validate(view)


@router.delete(
    "/{model_id}",
    status_code=204,
    summary="Delete a model (needs If-Match; 409 while demand, plans or the fleet refer to it)",
    responses=problem_responses(*WRITE_PROBLEMS),
)
def delete_model(model_id: ModelId, if_match: IfMatch, session: SessionDep, caller: ApproverDep) -> Response:
    with workload_problems():
        workloads.delete_model(session, model_id, if_match=if_match, actor=caller.name)
    session.commit()
    return Response(status_code=204)
