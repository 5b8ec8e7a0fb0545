"""Offers and their prices: ``/v1/offers`` (filtered, cheapest per GPU-hour first), one offer with its
price history, spot statistics, and ``/v1/collection-runs`` with the errors each run recorded."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.http.deps import SessionDep, SettingsDep, ViewerDep
from api.http.pagination import MAX_PAGE, Page, PageDep
from api.http.params import UtcDatetime
from api.http.problems import COMMON_PROBLEMS, ApiProblem, FieldError, problem_responses
from scheduler.db.models import CollectionKind, CollectionStatus
from scheduler.services import catalog as catalog_service
from scheduler.services import collection_runs as run_service
from scheduler.services import prices as price_service
from scheduler.services import spot_stats as spot_service
from solver.domain import GpuType, PurchaseOption, ReservedTerm
from solver.units import MICRO_PER_USD

router = APIRouter(prefix="/offers", tags=["offers"])
runs_router = APIRouter(prefix="/collection-runs", tags=["offers"])

MAX_FILTER_VALUES = 50
MAX_SPOT_WINDOW_DAYS = 30  # hourly samples of every spot offer: a longer window costs seconds
MAX_USD_PER_GPU_HOUR = 1_000_000.0

# ------------------------------------------------------------------------------------------ schemas

OFFER_EXAMPLE: dict[str, Any] = {
    "id": 412,
    "key": "aws/us-east-1/use1-az4/p5.48xlarge/spot",
    "provider": "aws",
    "region": "us-east-1",
    "zone": "use1-az4",
    "country": "US",
    "jurisdictions": ["US"],
    "instance_type": "p5.48xlarge",
    "gpu_type": "H100",
    "gpus_per_instance": 8,
    "purchase_option": "spot",
    "term": None,
    "price_usd_per_hour": 31.4645,
    "price_usd_per_gpu_hour": 3.933062,
    "observed_at": "2026-11-30T08:00:00Z",
    "flags": [],
    "stale": False,
    "plannable": True,
}


def _usd(micro: int | None) -> float | None:
    return None if micro is None else micro / MICRO_PER_USD


class Offer(BaseModel):
    """One instance type in one region or zone under one purchase option, at its latest price."""

    model_config = ConfigDict(json_schema_extra={"examples": [OFFER_EXAMPLE]})

    id: int
    key: str = Field(description="The natural key: provider/region/zone/instance type/purchase option.")
    provider: str
    region: str
    zone: str = Field(description="Empty for a regional offer.")
    country: str = Field(description="ISO 3166-1 alpha-2 country of the region.")
    jurisdictions: list[str] = Field(description="The country and the groups it belongs to (EU, EEA).")
    instance_type: str
    gpu_type: GpuType
    gpus_per_instance: int
    purchase_option: PurchaseOption
    term: ReservedTerm | None = Field(description="The reservation term of a reserved offer.")
    price_usd_per_hour: float = Field(description="Latest price per instance-hour, USD.")
    price_usd_per_gpu_hour: float = Field(description="Latest price per GPU-hour, USD (what lists sort by).")
    observed_at: dt.datetime = Field(description="When the latest price was observed (UTC).")
    flags: list[str] = Field(description="Caveats: spot_not_discounted, price_placeholder, relabelled, ...")
    stale: bool = Field(description="Not seen for longer than its purchase option's time to live.")
    plannable: bool = Field(description="The planner would use it: fresh and without an excluding flag.")

    @classmethod
    def of(cls, view: catalog_service.OfferView) -> Offer:
        return cls(
            id=view.offer_id,
            key=view.key,
            provider=view.provider,
            region=view.region,
            zone=view.zone,
            country=view.country,
            jurisdictions=list(view.jurisdictions),
            instance_type=view.instance_type,
            gpu_type=view.gpu_type,
            gpus_per_instance=view.gpus_per_instance,
            purchase_option=view.purchase_option,
            term=view.term,
            price_usd_per_hour=view.price_micro_usd_per_hour / MICRO_PER_USD,
            price_usd_per_gpu_hour=view.price_micro_usd_per_gpu_hour / MICRO_PER_USD,
            observed_at=view.observed_at,
            flags=list(view.flags),
            stale=view.stale,
            plannable=view.plannable,
        )


class PricePoint(BaseModel):
    observed_at: dt.datetime
    price_usd_per_hour: float = Field(description="Price per instance-hour, USD.")
    price_usd_per_gpu_hour: float = Field(description="Price per GPU-hour, USD.")
    source: str


class PriceHistory(BaseModel):
    total: int = Field(description="Observations since `since` (all of them without it).")
    points: list[PricePoint] = Field(description="The newest `history_limit` of them, oldest first.")


class OfferDetail(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "offer": OFFER_EXAMPLE,
                    "stale_since": None,
                    "history": {
                        "total": 2,
                        "points": [
                            {
                                "observed_at": "2026-11-29T08:00:00Z",
                                "price_usd_per_hour": 30.9,
                                "price_usd_per_gpu_hour": 3.8625,
                                "source": "aws-spot-price-history",
                            },
                            {
                                "observed_at": "2026-11-30T08:00:00Z",
                                "price_usd_per_hour": 31.4645,
                                "price_usd_per_gpu_hour": 3.933062,
                                "source": "aws-spot-price-history",
                            },
                        ],
                    },
                }
            ]
        }
    )

    offer: Offer
    stale_since: dt.datetime | None = Field(description="When the offer was marked stale; null if fresh.")
    history: PriceHistory


class SpotStatistics(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "offer_id": 412,
                    "offer_key": "aws/us-east-1/use1-az4/p5.48xlarge/spot",
                    "provider": "aws",
                    "region": "us-east-1",
                    "zone": "use1-az4",
                    "instance_type": "p5.48xlarge",
                    "gpus_per_instance": 8,
                    "latest_price_usd_per_hour": 31.4645,
                    "on_demand_price_usd_per_hour": 98.32,
                    "stale": False,
                    "samples": 168,
                    "median_usd_per_hour": 31.2,
                    "volatility": 0.04,
                    "ratio_to_on_demand": 0.317,
                    "placement_score": 7,
                    "risk": 0.12,
                    "risk_basis": ["prior", "volatility", "placement_score"],
                }
            ]
        }
    )

    offer_id: int
    offer_key: str
    provider: str
    region: str
    zone: str
    instance_type: str
    gpus_per_instance: int
    latest_price_usd_per_hour: float | None = Field(description="USD per instance-hour.")
    on_demand_price_usd_per_hour: float | None = Field(
        description="The on-demand price of the same instance type in the same region, USD per hour."
    )
    stale: bool
    samples: int = Field(description="Hourly samples in the window.")
    median_usd_per_hour: float | None = Field(description="Median of the samples, USD per instance-hour.")
    volatility: float | None = Field(description="Coefficient of variation of the hourly samples.")
    ratio_to_on_demand: float | None
    placement_score: int | None = Field(description="The provider's spot placement score (1-10), if any.")
    risk: float = Field(description="Estimated interruption risk, 0..1.")
    risk_basis: list[str] = Field(description="What the risk was computed from.")


class CollectionError(BaseModel):
    provider: str | None
    location: str = Field(description="Where in the source the error was (file:line, API call), if known.")
    message: str
    occurred_at: dt.datetime


class CollectionRun(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "kind": "collect",
                    "source": "aws",
                    "status": "partial",
                    "started_at": "2026-12-01T10:00:00Z",
                    "finished_at": "2026-12-01T10:04:12Z",
                    "offers_seen": 412,
                    "observations_added": 398,
                    "detail": {},
                    "error_count": 1,
                    "errors": [
                        {
                            "provider": "aws",
                            "location": "ap-south-2",
                            "message": "UnauthorizedOperation: the region is not enabled",
                            "occurred_at": "2026-12-01T10:01:02Z",
                        }
                    ],
                }
            ]
        }
    )

    id: int
    kind: CollectionKind
    source: str
    status: CollectionStatus
    started_at: dt.datetime
    finished_at: dt.datetime | None
    offers_seen: int
    observations_added: int
    detail: dict[str, Any]
    error_count: int
    errors: list[CollectionError] = Field(
        description="The run's first errors (up to 20); all of them at /v1/collection-runs/{id}/errors."
    )


def _error(view: run_service.CollectionErrorView) -> CollectionError:
    return CollectionError(
        provider=view.provider, location=view.location, message=view.message, occurred_at=view.occurred_at
    )


# ----------------------------------------------------------------------------------------- queries


def _unknown(exc: catalog_service.UnknownFilterValueError) -> ApiProblem:
    return ApiProblem(422, str(exc), errors=[FieldError(field=f"query.{exc.field}", message=str(exc))])


ShortText = Annotated[str, Field(min_length=1, max_length=200)]


@router.get(
    "",
    summary="List offers, cheapest per GPU-hour first",
    description="Filters combine with AND; a repeated filter (`?provider=aws&provider=gcp`) is an OR of its "
    "values. A provider, region or jurisdiction the database does not know is 422, naming the field and "
    "listing the known values.",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def list_offers(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
    gpu_type: Annotated[list[GpuType] | None, Query(description="GPU type (repeatable).")] = None,
    provider: Annotated[
        list[ShortText] | None, Query(max_length=MAX_FILTER_VALUES, description="Provider (repeatable).")
    ] = None,
    region: Annotated[
        list[ShortText] | None,
        Query(max_length=MAX_FILTER_VALUES, description="Region code or provider/code (repeatable)."),
    ] = None,
    jurisdiction: Annotated[
        list[ShortText] | None,
        Query(
            max_length=MAX_FILTER_VALUES, description="Jurisdiction or country: EU, EEA, US, DE (repeatable)."
        ),
    ] = None,
    purchase_option: Annotated[
        list[PurchaseOption] | None, Query(description="Purchase option (repeatable).")
    ] = None,
    max_usd_per_gpu_hour: Annotated[
        float | None, Query(gt=0, le=MAX_USD_PER_GPU_HOUR, description="Highest price per GPU-hour, USD.")
    ] = None,
    fresh_only: Annotated[bool, Query(description="Only offers not marked stale.")] = False,
    plannable_only: Annotated[
        bool, Query(description="Only offers the planner would use (fresh, no excluding flag).")
    ] = False,
) -> Page[Offer]:
    where = catalog_service.OfferFilter(
        gpu_types=frozenset(gpu_type or ()),
        providers=frozenset(p.strip().lower() for p in provider or ()),
        regions=frozenset(r.strip() for r in region or ()),
        jurisdictions=frozenset(j.strip().upper() for j in jurisdiction or ()),
        purchase_options=frozenset(purchase_option or ()),
        max_price_micro_usd_per_gpu_hour=(
            int(max_usd_per_gpu_hour * MICRO_PER_USD) if max_usd_per_gpu_hour is not None else None
        ),
        fresh_only=fresh_only,
        plannable_only=plannable_only,
    )
    try:
        views = catalog_service.query_offers(
            session, where, limit=page.limit + 1, offset=page.offset, strict=True
        )
    except catalog_service.UnknownFilterValueError as exc:
        raise _unknown(exc) from None
    return Page[Offer].of([Offer.of(view) for view in views], page)


@router.get(
    "/spot-statistics",
    summary="Spot statistics per spot offer",
    description="Per spot offer over a window ending now: hourly samples, median, volatility, ratio to "
    "on-demand, the provider's placement score and the interruption risk the planner uses. Sorted by "
    "offer key.",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def spot_statistics(
    session: SessionDep,
    settings: SettingsDep,
    caller: ViewerDep,
    page: PageDep,
    provider: Annotated[
        list[ShortText] | None, Query(max_length=MAX_FILTER_VALUES, description="Provider (repeatable).")
    ] = None,
    window_days: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_SPOT_WINDOW_DAYS, description="Window in days (default GPUPLAN_SPOT_WINDOW_DAYS)."
        ),
    ] = None,
) -> Page[SpotStatistics]:
    providers = frozenset(p.strip().lower() for p in provider or ())
    try:
        catalog_service.check_offer_filter(session, catalog_service.OfferFilter(providers=providers))
    except catalog_service.UnknownFilterValueError as exc:
        raise _unknown(exc) from None
    window = dt.timedelta(days=window_days or settings.spot_window_days)
    items = spot_service.offer_spot_statistics(
        session, now=dt.datetime.now(dt.UTC), window=window, providers=providers
    )
    rows = [
        SpotStatistics(
            offer_id=item.offer_id,
            offer_key=item.offer_key,
            provider=item.provider,
            region=item.region,
            zone=item.zone,
            instance_type=item.instance_type,
            gpus_per_instance=item.gpus_per_instance,
            latest_price_usd_per_hour=_usd(item.latest_price_micro_usd_per_hour),
            on_demand_price_usd_per_hour=_usd(item.on_demand_micro_usd_per_hour),
            stale=item.stale,
            samples=item.stats.samples,
            median_usd_per_hour=_usd(item.stats.median_micro_usd_per_hour),
            volatility=item.stats.volatility,
            ratio_to_on_demand=item.stats.ratio_to_on_demand,
            placement_score=item.stats.placement_score,
            risk=item.stats.risk,
            risk_basis=list(item.stats.risk_basis),
        )
        for item in items[page.offset : page.offset + page.limit + 1]
    ]
    return Page[SpotStatistics].of(rows, page)


@router.get(
    "/{offer_id}",
    summary="One offer with its price history",
    responses=problem_responses(*COMMON_PROBLEMS, 404),
)
def get_offer(
    session: SessionDep,
    caller: ViewerDep,
    offer_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    since: Annotated[UtcDatetime | None, Query(description="Only observations from this time on.")] = None,
    history_limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description=f"The newest N observations, 1..{MAX_PAGE}.")
    ] = 100,
) -> OfferDetail:
    view = catalog_service.offer_by_id(session, offer_id)
    history = (
        price_service.price_history(session, view.key, since=since, limit=history_limit) if view else None
    )
    if view is None or history is None:
        raise ApiProblem(404, f"no offer {offer_id} with a price (GET /v1/offers lists them)")
    gpus = view.gpus_per_instance
    return OfferDetail(
        offer=Offer.of(view),
        stale_since=history.stale_since,
        history=PriceHistory(
            total=history.total,
            points=[
                PricePoint(
                    observed_at=point.observed_at,
                    price_usd_per_hour=point.price_micro_usd_per_hour / MICRO_PER_USD,
                    price_usd_per_gpu_hour=point.price_micro_usd_per_hour // gpus / MICRO_PER_USD,
                    source=point.source,
                )
                for point in history.points
            ],
        ),
    )


@runs_router.get(
    "",
    summary="List collection runs, newest first, with their errors",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def list_collection_runs(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
    kind: Annotated[CollectionKind | None, Query(description="catalog or collect.")] = None,
    status: Annotated[CollectionStatus | None, Query(description="Only runs in this state.")] = None,
) -> Page[CollectionRun]:
    views = run_service.list_runs(session, limit=page.limit + 1, offset=page.offset, kind=kind, status=status)
    rows = [
        CollectionRun(
            id=view.run_id,
            kind=view.kind,
            source=view.source,
            status=view.status,
            started_at=view.started_at,
            finished_at=view.finished_at,
            offers_seen=view.offers_seen,
            observations_added=view.observations_added,
            detail=view.detail,
            error_count=view.error_count,
            errors=[_error(error) for error in view.errors],
        )
        for view in views
    ]
    return Page[CollectionRun].of(rows, page)


@runs_router.get(
    "/{run_id}/errors",
    summary="All errors of one collection run",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "items": [
                            {
                                "provider": "aws",
                                "location": "ap-south-2",
                                "message": "UnauthorizedOperation: the region is not enabled",
                                "occurred_at": "2026-12-01T10:01:02Z",
                            }
                        ],
                        "limit": 50,
                        "offset": 0,
                        "next_offset": None,
                    }
                }
            }
        },
        **problem_responses(*COMMON_PROBLEMS, 404),
    },
)
def collection_run_errors(
    session: SessionDep,
    caller: ViewerDep,
    page: PageDep,
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> Page[CollectionError]:
    try:
        views = run_service.run_errors(session, run_id, limit=page.limit + 1, offset=page.offset)
    except run_service.CollectionRunNotFoundError as exc:
        raise ApiProblem(404, str(exc)) from None
    return Page[CollectionError].of([_error(view) for view in views], page)
