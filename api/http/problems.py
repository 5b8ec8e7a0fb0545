"""Errors as RFC 9457 ``application/problem+json`` documents that name what is wrong.

Routers raise ``ApiProblem`` (or a service's ``InputError``, mapped here by its type); request
validation errors list every bad field with its path (``body.demand.0.tokens_per_s``). Every operation
documents the problem responses it can give through ``problem_responses``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.http.routes import allowed_methods
from scheduler.db.session import DatabaseError
from scheduler.services.apikeys import ApiKeyNotFoundError
from scheduler.services.apply import NotApprovedError
from scheduler.services.collection_runs import CollectionRunNotFoundError
from scheduler.services.plans import (
    FourEyesError,
    IllegalTransitionError,
    PlanBusyError,
    PlanNotFoundError,
    StalePlanError,
)
from scheduler.services.reference import ReferenceDataBusyError
from scheduler.services.solvequeue import SolveJobNotFoundError
from solver.errors import InputError

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)


class FieldError(BaseModel):
    field: str = Field(description="Path of the bad field: body.name, query.limit, header.If-Match.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "1 field is not valid",
                    "errors": [
                        {"field": "query.limit", "message": "Input should be less than or equal to 500"}
                    ],
                }
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class ApiProblem(Exception):  # noqa: N818 - it is a problem document, not an error of ours
    """A client error a router raises: its status, one line of detail, and the bad fields if any."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of an operation: each status documented as a problem document."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


# Every operation can get these: a malformed request, no or a bad key, a key without the role, a body
# too large, and a server that cannot reach its database.
COMMON_PROBLEMS = (400, 401, 403, 413, 422, 503)


def problem_response(
    status: int,
    detail: str | None,
    *,
    request: Request | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _input_error_status(exc: InputError) -> int:
    if isinstance(
        exc, PlanNotFoundError | SolveJobNotFoundError | ApiKeyNotFoundError | CollectionRunNotFoundError
    ):
        return 404
    if isinstance(exc, FourEyesError):
        return 403
    if isinstance(exc, IllegalTransitionError | StalePlanError | PlanBusyError | NotApprovedError):
        return 409
    return 400


def _validation_message(item: dict[str, Any]) -> str:
    """The message of one validation error; a choice among names (an enum) also says what was given."""
    message = str(item.get("msg", "not valid")).removeprefix("Value error, ")
    if item.get("type") in ("enum", "literal_error") and isinstance(item.get("input"), str | int | float):
        message += f", not {item['input']!r}"
    return message


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


def install(app: FastAPI) -> None:
    """Turn every error into a problem document."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            exc.status, exc.detail, request=request, errors=exc.errors, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(field=_field_path(item.get("loc", ())), message=_validation_message(item))
            for item in exc.errors()
        ]
        count = len(errors)
        detail = f"{count} field{'s' if count != 1 else ''} not valid: " + "; ".join(
            f"{error.field}: {error.message}" for error in errors[:5]
        )
        return problem_response(422, detail, request=request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app.routes, request.url.path))
        return problem_response(exc.status_code, str(exc.detail), request=request, headers=headers or None)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return problem_response(_input_error_status(exc), str(exc), request=request)

    @app.exception_handler(ReferenceDataBusyError)
    async def _reference_busy(request: Request, exc: ReferenceDataBusyError) -> JSONResponse:
        # another writer of reference data (a catalog load) holds its lock: retry later
        log.warning("reference data busy", error=str(exc))
        return problem_response(
            503,
            "reference data is being written by another process; retry later",
            request=request,
            headers={"Retry-After": "30"},
        )

    @app.exception_handler(DatabaseError)
    async def _database(request: Request, exc: DatabaseError) -> JSONResponse:
        log.warning("database unavailable", error=str(exc))
        return problem_response(503, "the database is unavailable", request=request)

    @app.exception_handler(sa.exc.OperationalError)
    async def _unreachable(request: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        # the server down, a connection lost, a database locked for too long: retry later
        log.warning("database unavailable", error=str(exc.orig).splitlines()[0] if exc.orig else str(exc))
        return problem_response(
            503, "the database is unavailable", request=request, headers={"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(500, "internal error; the server log has the details", request=request)
