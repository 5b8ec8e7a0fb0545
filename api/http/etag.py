"""Entity tags and preconditions for the workload resources, and their errors as problem documents.

A single-resource GET answers with an ``ETag``; PUT and DELETE need ``If-Match`` with the tag the caller
read: 428 without it, 412 when the entity changed since (someone else wrote first).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Header, Response

from api.http.deps import ApproverDep
from api.http.problems import ApiProblem, FieldError
from scheduler.services import workloads

IF_MATCH_DESCRIPTION = (
    'The entity tag of the version being changed, as the last GET returned it (`"3f2a..."`): '
    "428 without it, 412 when the entity changed since."
)


def require_if_match(
    caller: ApproverDep,
    if_match: Annotated[str | None, Header(alias="If-Match", description=IF_MATCH_DESCRIPTION)] = None,
) -> str:
    """The If-Match of a write. The caller is checked first (the same dependency the operation declares,
    run once): no key is 401 and a role too low 403, whatever the headers, never 428."""
    if if_match is None or not if_match.strip():
        raise ApiProblem(
            428,
            "this write needs If-Match with the entity tag from a GET of the resource, "
            "so that a change made since is not overwritten",
            errors=[FieldError(field="header.If-Match", message="missing")],
        )
    return if_match.strip()


def set_etag(response: Response, view: dict[str, Any]) -> None:
    response.headers["ETag"] = workloads.etag(view)


_STATUS: tuple[tuple[type[workloads.WorkloadError], int], ...] = (
    (workloads.WorkloadNotFoundError, 404),
    (workloads.WorkloadConflictError, 409),
    (workloads.PreconditionFailedError, 412),
    (workloads.WorkloadInvalidError, 422),
)


@contextmanager
def workload_problems() -> Iterator[None]:
    """Turn the workload service's errors into problem documents naming each bad field or entity."""
    try:
        yield
    except workloads.WorkloadError as exc:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        errors = [FieldError(field=problem.field, message=problem.message) for problem in exc.problems]
        raise ApiProblem(status, exc.detail, errors=errors) from exc


_ETAG_HEADER = {
    "ETag": {
        "description": "The entity tag: send it as If-Match to change the entity.",
        "schema": {"type": "string"},
    }
}
_LOCATION_HEADER = {"Location": {"description": "The new entity's path.", "schema": {"type": "string"}}}
WITH_ETAG: dict[int | str, dict[str, Any]] = {200: {"headers": _ETAG_HEADER}}
CREATED: dict[int | str, dict[str, Any]] = {201: {"headers": {**_ETAG_HEADER, **_LOCATION_HEADER}}}
