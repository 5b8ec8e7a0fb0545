"""Planning policies (the target utilisation and the churn limits; exactly one is active):
``/v1/policies``. The per-model policies (latency SLO, redundancy, spot cap) are fields of the models,
residency rules fields of the demand sources, budgets their own resource."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response

from api.http.deps import ApproverDep, SessionDep, ViewerDep
from api.http.etag import CREATED, WITH_ETAG, require_if_match, set_etag, workload_problems
from api.http.merge_patch import PATCH_DESCRIPTION, patched
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from api.http.schemas.workloads import POLICY_EXAMPLE, PolicyBody, PolicyOut, body_examples
from scheduler.services import workloads

router = APIRouter(prefix="/policies", tags=["workloads"])

EntityId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The policy's id.")]
IfMatch = Annotated[str, Depends(require_if_match)]
PolicyIn = Annotated[
    PolicyBody,
    Body(openapi_examples=body_examples("The default policy", {**POLICY_EXAMPLE, "active": True})),
]
READ_ONLY = {"id", "updated_at"}
PatchBody = Annotated[
    dict[str, Any],
    Body(
        description=PATCH_DESCRIPTION,
        openapi_examples=body_examples("A partial change", {"target_utilisation": 0.85}),
    ),
]
WRITE_PROBLEMS = (*COMMON_PROBLEMS, 404, 409, 412, 428)


@router.get("", summary="List planning policies", responses=problem_responses(*COMMON_PROBLEMS))
def list_policies(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
) -> Page[PolicyOut]:
    rows = workloads.list_policies(session, limit=page.limit + 1, offset=page.offset)
    return Page.of([PolicyOut.model_validate(row) for row in rows], page)


@router.get(
    "/{policy_id}",
    summary="One planning policy (and its ETag)",
    responses={**WITH_ETAG, **problem_responses(*COMMON_PROBLEMS, 404)},
)
def get_policy(policy_id: EntityId, session: SessionDep, caller: ViewerDep, response: Response) -> PolicyOut:
    with workload_problems():
        view = workloads.get_policy(session, policy_id)
    set_etag(response, view)
    return PolicyOut.model_validate(view)


@router.post(
    "",
    status_code=201,
    summary="Create a planning policy (active: true makes it the one plans use)",
    responses={**CREATED, **problem_responses(*COMMON_PROBLEMS, 409)},
)
def create_policy(body: PolicyIn, session: SessionDep, caller: ApproverDep, response: Response) -> PolicyOut:
    with workload_problems():
        view = workloads.create_policy(
            session, body, active=body.active, actor=caller.name, now=dt.datetime.now(dt.UTC)
        )
    session.commit()
    set_etag(response, view)
    response.headers["Location"] = f"/v1/policies/{view['id']}"
    return PolicyOut.model_validate(view)


@router.put(
    "/{policy_id}",
    summary="Replace a planning policy's knobs, or activate it (needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def update_policy(
    policy_id: EntityId,
    body: PolicyIn,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> PolicyOut:
    with workload_problems():
        view = workloads.update_policy(
            session,
            policy_id,
            body,
            active=body.active,
            if_match=if_match,
            actor=caller.name,
            now=dt.datetime.now(dt.UTC),
        )
    session.commit()
    set_etag(response, view)
    return PolicyOut.model_validate(view)


@router.patch(
    "/{policy_id}",
    summary="Change some fields of a planning policy (a JSON merge patch; needs If-Match)",
    responses={**WITH_ETAG, **problem_responses(*WRITE_PROBLEMS)},
)
def patch_policy(
    policy_id: EntityId,
    patch: PatchBody,
    if_match: IfMatch,
    session: SessionDep,
    caller: ApproverDep,
    response: Response,
) -> PolicyOut:
    with workload_problems():
        workloads.lock_workloads(session)
        current = workloads.get_policy(session, policy_id)
        workloads.check_tag("policy", policy_id, current, if_match)
        current.pop("active")  # unchanged unless the patch says
        body = patched(current, patch, read_only=READ_ONLY, body_type=PolicyBody)
        view = workloads.update_policy(
            session,
            policy_id,
            body,
            active=body.active,
            if_match=if_match,
            actor=caller.name,
            now=dt.datetime.now(dt.UTC),
        )
    session.commit()
    set_etag(response, view)
    return PolicyOut.model_validate(view)


@router.delete(
    "/{policy_id}",
    status_code=204,
    summary="Delete a planning policy that is not active (needs If-Match)",
    responses=problem_responses(*WRITE_PROBLEMS),
)
def delete_policy(
    policy_id: EntityId, if_match: IfMatch, session: SessionDep, caller: ApproverDep
) -> Response:
    with workload_problems():
        workloads.delete_policy(session, policy_id, if_match=if_match, actor=caller.name)
    session.commit()
    return Response(status_code=204)
