"""``/v1/costs``: allocation over a window, month-to-date spend and budget forecasts, dollars per million
tokens per model, and the FOCUS 1.2 export. Reads only (viewer). The work is
``scheduler.services.costs`` and ``scheduler.services.focus``; money is USD with the unit in the name.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.http.deps import SessionDep, ViewerDep
from api.http.problems import COMMON_PROBLEMS, ApiProblem, FieldError, problem_responses
from scheduler.services import costs as cost_service
from scheduler.services import focus as focus_service
from scheduler.services.costs import (
    AGGREGATES,
    Allocation,
    CostQueryError,
    NoPlanError,
    Window,
)
from scheduler.services.forecast import GLOBAL

router = APIRouter(prefix="/costs", tags=["costs"])

_INSTANT = (
    r"(19[7-9]\d|2[01]\d\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))?"
)
WINDOW_PATTERN = rf"^(today|week|month|lastmonth|[1-9]\d{{0,2}}[mhd]|[1-9]\d?w|{_INSTANT},{_INSTANT})$"
STEP_PATTERN = r"^(window|[1-9]\d{0,2}[mhdw])$"
AGGREGATE_PATTERN = rf"^({'|'.join(AGGREGATES)})(,({'|'.join(AGGREGATES)}))*$"

WindowQuery = Annotated[
    str,
    Query(
        max_length=120,
        pattern=WINDOW_PATTERN,
        description="A duration back from now (7d, 24h, 2w), today, week, month, lastmonth, or "
        "start,end in ISO 8601 UTC (2026-12-01T00:00:00Z,2026-12-08T00:00:00Z); the end is exclusive. "
        "422 when the end is not after the start or the window is longer than 3660 days.",
    ),
]
StepQuery = Annotated[
    str | None,
    Query(
        max_length=20,
        pattern=STEP_PATTERN,
        description="Period length: 1h, 6h, 1d, 1w; absent or `window`: one period. 422 beyond "
        f"{cost_service.MAX_PERIODS} periods.",
    ),
]


def usd(micro: float) -> float:
    return round(micro / 1_000_000, 6)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _query_problem(exc: CostQueryError) -> ApiProblem:
    return ApiProblem(422, str(exc), errors=[FieldError(field=f"query.{exc.field}", message=str(exc))])


class WindowOut(BaseModel):
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def of(cls, window: Window) -> WindowOut:
        return cls(start=window.start, end=window.end)


class AllocationOut(BaseModel):
    name: str = Field(description="The aggregate keys' values joined by '/'.")
    properties: dict[str, str] = Field(description="Each aggregate key's value.")
    instance_hours: float
    gpu_hours: float
    list_cost_usd: float = Field(description="At the observed list prices.")
    cost_usd: float = Field(description="Effective: with the discount overlay in force.")

    @classmethod
    def of(cls, allocation: Allocation) -> AllocationOut:
        return cls(
            name=allocation.name,
            properties=allocation.properties,
            instance_hours=round(allocation.instance_hours, 6),
            gpu_hours=round(allocation.gpu_hours, 6),
            list_cost_usd=usd(allocation.list_micro_usd),
            cost_usd=usd(allocation.effective_micro_usd),
        )


class AllocationSetOut(BaseModel):
    window: WindowOut
    allocations: list[AllocationOut]
    cost_usd: float


class AllocationResponse(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "window": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00Z"},
                    "step": "1d",
                    "aggregate": ["team"],
                    "currency": "USD",
                    "sets": [
                        {
                            "window": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"},
                            "allocations": [
                                {
                                    "name": "chat",
                                    "properties": {"team": "chat"},
                                    "instance_hours": 240.0,
                                    "gpu_hours": 1920.0,
                                    "list_cost_usd": 5280.0,
                                    "cost_usd": 5280.0,
                                }
                            ],
                            "cost_usd": 5280.0,
                        }
                    ],
                    "totals": [
                        {
                            "name": "chat",
                            "properties": {"team": "chat"},
                            "instance_hours": 480.0,
                            "gpu_hours": 3840.0,
                            "list_cost_usd": 10560.0,
                            "cost_usd": 10560.0,
                        }
                    ],
                    "cost_usd": 10560.0,
                }
            ]
        }
    }

    window: WindowOut
    step: str | None
    aggregate: list[str]
    currency: str = "USD"
    sets: list[AllocationSetOut] = Field(description="One per step, in time order.")
    totals: list[AllocationOut] = Field(description="Over the whole window, most expensive first.")
    cost_usd: float


@router.get(
    "/allocation",
    summary="The fleet's cost over a window, per step, aggregated by team, model, region, provider, GPU "
    "type or purchase option",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def get_allocation(
    session: SessionDep,
    caller: ViewerDep,
    window: WindowQuery = "7d",
    step: StepQuery = None,
    aggregate: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=AGGREGATE_PATTERN,
            description=f"Comma-separated keys among {', '.join(AGGREGATES)} (default team).",
        ),
    ] = None,
) -> AllocationResponse:
    """From the fleet's history: each instance's hours at its offer's observed price, split over models and
    teams by the applied plan in effect (idle GPUs under `(idle)`, instances no plan accounts for under
    `(unallocated)`). The query follows OpenCost's `/allocation`: `window`, `step`, `aggregate`."""
    now = _now()
    try:
        parsed = cost_service.parse_window(window, now)
        parsed_step = cost_service.parse_step(step, parsed)
        keys = cost_service.parse_aggregate(aggregate)
    except CostQueryError as exc:
        raise _query_problem(exc) from exc
    sets, totals = cost_service.allocation(session, parsed, parsed_step, keys, now=now)
    return AllocationResponse(
        window=WindowOut.of(parsed),
        step=step if parsed_step is not None else None,
        aggregate=list(keys),
        sets=[
            AllocationSetOut(
                window=WindowOut.of(s.window),
                allocations=[AllocationOut.of(a) for a in s.allocations],
                cost_usd=usd(s.effective_micro_usd),
            )
            for s in sets
        ],
        totals=[AllocationOut.of(a) for a in totals],
        cost_usd=usd(sum(a.effective_micro_usd for a in totals)),
    )


class BudgetOut(BaseModel):
    scope: str
    team: str | None
    limit_usd_per_month: float
    spent_usd: float = Field(description="Month to date.")
    burn_rate_usd_per_hour: float = Field(description="The running fleet's cost per hour now, in scope.")
    burn_rate_usd_per_day: float
    month_end_usd: float = Field(description="Spend so far plus the burn rate (with growth) to month end.")
    headroom_usd: float = Field(description="Limit minus month-end spend; negative: over budget.")
    runs_out_at: dt.datetime | None = Field(description="When this month's spend reaches the limit.")
    run_rate_exceeds_on: dt.date | None = Field(description="First day the monthly run rate exceeds it.")


class SpendResponse(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "now": "2026-12-10T12:00:00Z",
                    "month_start": "2026-12-01T00:00:00Z",
                    "month_end": "2027-01-01T00:00:00Z",
                    "monthly_growth": 0.0,
                    "spent_usd": 91234.5,
                    "burn_rate_usd_per_hour": 380.1,
                    "spent_by_team_usd": {"chat": 40000.0, "(idle)": 1200.0},
                    "burn_rate_by_team_usd_per_hour": {"chat": 166.6, "(idle)": 5.0},
                    "budgets": [
                        {
                            "scope": "global",
                            "team": None,
                            "limit_usd_per_month": 250000.0,
                            "spent_usd": 91234.5,
                            "burn_rate_usd_per_hour": 380.1,
                            "burn_rate_usd_per_day": 9122.4,
                            "month_end_usd": 283000.0,
                            "headroom_usd": -33000.0,
                            "runs_out_at": "2026-12-28T09:00:00Z",
                            "run_rate_exceeds_on": "2026-12-10",
                        }
                    ],
                }
            ]
        }
    }

    now: dt.datetime
    month_start: dt.datetime
    month_end: dt.datetime
    monthly_growth: float
    spent_usd: float = Field(description="The whole fleet, month to date (effective cost).")
    burn_rate_usd_per_hour: float
    spent_by_team_usd: dict[str, float] = Field(description="Per team, (idle) and (unallocated) included.")
    burn_rate_by_team_usd_per_hour: dict[str, float]
    budgets: list[BudgetOut]


@router.get(
    "/spend",
    summary="Month-to-date spend, burn rate and the month-end forecast against each budget",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def get_spend(
    session: SessionDep,
    caller: ViewerDep,
    monthly_growth: Annotated[
        float,
        Query(gt=-1.0, le=10.0, description="Demand (and cost) trend per month: 0.05 is +5% a month."),
    ] = 0.0,
) -> SpendResponse:
    """Spend from the fleet's history since the 1st (UTC); the burn rate is what the running fleet costs
    per hour now; each budget's month-end figure, headroom and run-out time follow from them."""
    forecast = cost_service.spend_forecast(session, now=_now(), monthly_growth=monthly_growth)
    rates = forecast.burn_micro_usd_per_hour
    budgets = [
        BudgetOut(
            scope=b.scope.value,
            team=b.team,
            limit_usd_per_month=usd(b.limit_micro_usd_per_month),
            spent_usd=usd(b.spent_micro_usd),
            burn_rate_usd_per_hour=usd(b.cost_micro_usd_per_hour),
            burn_rate_usd_per_day=usd(b.cost_micro_usd_per_hour * 24),
            month_end_usd=usd(b.month_end_micro_usd),
            headroom_usd=usd(b.headroom_micro_usd),
            runs_out_at=b.runs_out_at,
            run_rate_exceeds_on=b.run_rate_exceeds_on,
        )
        for b in forecast.budgets
    ]
    return SpendResponse(
        now=forecast.now,
        month_start=forecast.month_start,
        month_end=forecast.month_end,
        monthly_growth=monthly_growth,
        spent_usd=usd(forecast.spent_micro_usd.get(GLOBAL, 0.0)),
        burn_rate_usd_per_hour=usd(rates.get(GLOBAL, 0.0)),
        spent_by_team_usd={k: usd(v) for k, v in sorted(forecast.spent_micro_usd.items()) if k != GLOBAL},
        burn_rate_by_team_usd_per_hour={k: usd(v) for k, v in sorted(rates.items()) if k != GLOBAL},
        budgets=budgets,
    )


class ModelUnitCostOut(BaseModel):
    model: str
    team: str
    replicas: int
    gpus: int
    cost_usd_per_hour: float = Field(description="The model's share of the plan's cost (by GPUs used).")
    demand_tokens_per_s: int
    capacity_tokens_per_s: int = Field(description="Replicas x the profile's throughput at full load.")
    utilisation: float | None = Field(description="Demand over capacity, as planned.")
    usd_per_million_tokens: float | None = Field(description="At the planned utilisation (its demand).")
    usd_per_million_tokens_at_capacity: float | None = Field(description="If the replicas ran at full load.")


class UnitCostResponse(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "plan_id": 12,
                    "plan_status": "applied",
                    "target_utilisation": 0.7,
                    "cost_usd_per_hour": 380.5,
                    "idle_usd_per_hour": 4.2,
                    "models": [
                        {
                            "model": "llama-3.1-8b",
                            "team": "chat",
                            "replicas": 40,
                            "gpus": 40,
                            "cost_usd_per_hour": 88.0,
                            "demand_tokens_per_s": 400000,
                            "capacity_tokens_per_s": 567200,
                            "utilisation": 0.705,
                            "usd_per_million_tokens": 0.0611,
                            "usd_per_million_tokens_at_capacity": 0.0431,
                        }
                    ],
                }
            ]
        }
    }

    plan_id: int
    plan_status: str
    target_utilisation: float
    cost_usd_per_hour: float
    idle_usd_per_hour: float = Field(description="GPUs the plan buys that no replica uses.")
    models: list[ModelUnitCostOut]


@router.get(
    "/per-token",
    summary="Dollars per million tokens per model at the plan's utilisation",
    responses=problem_responses(*COMMON_PROBLEMS, 404),
)
def get_unit_costs(
    session: SessionDep,
    caller: ViewerDep,
    plan_id: Annotated[
        int | None,
        Query(
            ge=1, le=2**31 - 1, description="The plan; default: the applied one, else the newest open one."
        ),
    ] = None,
) -> UnitCostResponse:
    """The plan's cost per model (split by the GPUs its replicas use) over the tokens its demand sends: what a
    million tokens cost when demand is as planned; and what they would cost at the replicas' full load."""
    try:
        figures = cost_service.unit_costs(session, plan_id)
    except NoPlanError as exc:
        raise ApiProblem(404, str(exc)) from exc
    return UnitCostResponse(
        plan_id=figures.plan_id,
        plan_status=figures.plan_status.value,
        target_utilisation=figures.target_utilisation,
        cost_usd_per_hour=usd(figures.cost_micro_usd_per_hour),
        idle_usd_per_hour=usd(figures.idle_micro_usd_per_hour),
        models=[
            ModelUnitCostOut(
                model=m.model,
                team=m.team,
                replicas=m.replicas,
                gpus=m.gpus,
                cost_usd_per_hour=usd(m.cost_micro_usd_per_hour),
                demand_tokens_per_s=m.demand_tokens_per_s,
                capacity_tokens_per_s=m.capacity_tokens_per_s,
                utilisation=m.utilisation,
                usd_per_million_tokens=None
                if m.usd_per_million_tokens is None
                else round(m.usd_per_million_tokens, 6),
                usd_per_million_tokens_at_capacity=None
                if m.usd_per_million_tokens_at_capacity is None
                else round(m.usd_per_million_tokens_at_capacity, 6),
            )
            for m in figures.models
        ],
    )


class FocusFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


MEDIA_TYPES = {FocusFormat.CSV: "text/csv", FocusFormat.PARQUET: "application/vnd.apache.parquet"}


@router.get(
    "/focus",
    summary="The fleet's and the plans' costs as a FOCUS 1.2 dataset (CSV or Parquet)",
    response_class=Response,
    responses={
        200: {
            "description": "FOCUS 1.2: the 21 mandatory columns in the specification's order, then x_ ones.",
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": ",".join(focus_service.COLUMNS) + "\r\n",
                },
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **problem_responses(*COMMON_PROBLEMS, 404),
    },
)
def get_focus(
    session: SessionDep,
    caller: ViewerDep,
    format: Annotated[FocusFormat, Query(description="csv or parquet.")] = FocusFormat.CSV,
    window: WindowQuery = "month",
    step: Annotated[
        str | None,
        Query(
            max_length=20,
            pattern=STEP_PATTERN,
            description="Charge period length (default 1d); periods are cut at month ends too.",
        ),
    ] = "1d",
    include: Annotated[
        str,
        Query(
            max_length=40,
            pattern=r"^(fleet|plan)(,(fleet|plan))?$",
            description="Row kinds: fleet, plan or fleet,plan (x_RowKind).",
        ),
    ] = "fleet,plan",
    plan_id: Annotated[
        list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None,
        Query(
            max_length=20,
            description="Plans to export (repeat); default: the applied plan and the newest open one.",
        ),
    ] = None,
) -> Response:
    """Fleet rows (x_RowKind fleet) are the running fleet's estimated charges; plan rows (x_RowKind plan)
    project a plan over the same periods with BilledCost 0, since a planned cost is not billed. Sum
    spend over fleet rows only."""
    now = _now()
    kinds = tuple(part.strip() for part in include.split(",") if part.strip())
    unknown = [kind for kind in kinds if kind not in focus_service.ROW_KINDS]
    if unknown or not kinds:
        message = (
            f"include: {', '.join(unknown) or 'nothing'} is not a row kind; give fleet, plan or fleet,plan"
        )
        raise ApiProblem(422, message, errors=[FieldError(field="query.include", message=message)])
    try:
        parsed = cost_service.parse_window(window, now)
        parsed_step = cost_service.parse_step(step, parsed)
    except CostQueryError as exc:
        raise _query_problem(exc) from exc
    try:
        rows = focus_service.focus_rows(
            session, parsed, parsed_step, now=now, include=kinds, plan_ids=tuple(plan_id or ())
        )
    except NoPlanError as exc:
        raise ApiProblem(404, str(exc)) from exc
    except CostQueryError as exc:
        raise _query_problem(exc) from exc
    body = focus_service.to_parquet(rows) if format is FocusFormat.PARQUET else focus_service.to_csv(rows)
    name = f"gpuplan-focus-{parsed.start:%Y%m%dT%H%M%SZ}-{parsed.end:%Y%m%dT%H%M%SZ}.{format.value}"
    return Response(
        content=body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
