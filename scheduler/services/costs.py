"""What the fleet cost and will cost: allocation over a window, month-to-date spend and the month-end
forecast against the budgets, dollars per million tokens per model, and the rows of a FOCUS export.

Spend comes from the fleet's history (``fleet_instances``): each instance costs its offer's price per
instance-hour from its launch (or first sighting) to its end (or now), at the price observed at each
moment (``price_observations``: the latest observation at or before it; before the first one, the first
one). The list price is what the observations say; the effective price has the discount overlay in force
applied (``pricing.discounts``; without an overlay they are equal).

An instance's cost is split over models and teams by the applied plan in effect for it: the newest of the
plans applied by then and the plan that launched it. Within a plan's placement on the instance's offer the
split is by the GPUs each model's replicas use; GPUs no replica uses are ``(idle)``, an instance on an
offer the plan does not use is ``(idle)`` and one no plan accounts for (adopted before any plan) is
``(unallocated)``.

Money is micro-USD (floats while hours are fractional); times are timezone-aware UTC; periods are
half-open ``[start, end)``. Reads only.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from pricing.discounts import DiscountOverlay, discounted_price
from scheduler.db.models import (
    AuditLogRow,
    FleetInstanceRow,
    InstanceTypeRow,
    ModelProfileRow,
    OfferRow,
    PlanPlacementRow,
    PlanReplicaRow,
    PlanRow,
    PlanStatus,
    PriceObservationRow,
    ProviderRow,
    RegionRow,
    ServedModelRow,
)
from scheduler.services.discounts import active_discounts
from scheduler.services.fleet import read_fleet
from scheduler.services.fleetstate import HELD
from scheduler.services.forecast import GLOBAL, BudgetForecast, forecast_budgets, month_bounds
from scheduler.services.planning import read_stored_plan
from scheduler.services.plans import plan_problem
from scheduler.services.studies import IDLE, cost_allocation
from solver.domain import Offer
from solver.errors import InputError

UNALLOCATED = "(unallocated)"
"""Team and model of instances no plan accounts for."""
AGGREGATES = ("team", "model", "region", "provider", "gpu_type", "purchase_option")
MAX_PERIODS = 5000
"""Periods (steps) a query may ask for."""
APPLIED_STATES = (PlanStatus.APPLIED, PlanStatus.PARTIALLY_APPLIED)
OPEN_STATES = (PlanStatus.DRAFT, PlanStatus.PENDING_APPROVAL, PlanStatus.APPROVED)
SECONDS_PER_HOUR = 3600.0
MAX_WINDOW = dt.timedelta(days=3660)
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
"""Windows lie within these (a FOCUS billing period, the month, must be representable)."""


class CostQueryError(InputError):
    """A window, step or aggregate that cannot be read; ``field`` names the query parameter."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NoPlanError(InputError):
    """No plan to read costs from (none stored, or not the one asked for)."""


# ------------------------------------------------------------------------------------ windows, steps

_DURATION = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {
    "m": dt.timedelta(minutes=1),
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
}


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / SECONDS_PER_HOUR


def _duration(text: str, field: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise CostQueryError(field, f"{text!r} is not a duration such as 30m, 1h, 1d or 2w")
    amount = int(match.group(1)) * _UNITS[match.group(2)]
    if amount <= dt.timedelta(0):
        raise CostQueryError(field, f"{text!r} is not a positive duration")
    return amount


def _instant(text: str, field: str) -> dt.datetime:
    text = text.strip()
    try:
        if len(text) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CostQueryError(
            field, f"{text!r} is not an ISO 8601 date or time (2026-12-01T00:00:00Z)"
        ) from None
    if moment.utcoffset() is None:
        raise CostQueryError(field, f"{text!r} has no time zone; add Z for UTC")
    return moment.astimezone(dt.UTC)


def parse_window(text: str, now: dt.datetime, *, field: str = "window") -> Window:
    """A window as OpenCost writes it: a duration back from now (``7d``, ``24h``), ``today``, ``week``
    (from Monday), ``month`` (from the 1st), ``lastmonth``, or ``start,end`` in ISO 8601 (dates are
    midnight UTC). The end is exclusive."""
    text = text.strip()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    named = {
        "today": Window(midnight, now),
        "week": Window(midnight - dt.timedelta(days=now.weekday()), now),
        "month": Window(month_bounds(now)[0], now),
    }
    if text in named:
        window = named[text]
    elif text == "lastmonth":
        this_month = month_bounds(now)[0]
        window = Window(month_bounds(this_month - dt.timedelta(days=1))[0], this_month)
    elif "," in text:
        first, _, second = text.partition(",")
        window = Window(_instant(first, field), _instant(second, field))
    else:
        back = _duration(text, field)
        if back > MAX_WINDOW:
            raise CostQueryError(field, f"{text!r}: at most {MAX_WINDOW.days} days")
        window = Window(now - back, now)
    if not (window.start >= EARLIEST and window.end <= LATEST):
        raise CostQueryError(field, f"{text!r}: times must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    if window.end <= window.start:
        raise CostQueryError(field, f"{text!r}: the end must be after the start")
    if window.end - window.start > MAX_WINDOW:
        raise CostQueryError(field, f"{text!r}: at most {MAX_WINDOW.days} days")
    return window


def parse_step(text: str | None, window: Window, *, field: str = "step") -> dt.timedelta | None:
    """A step such as ``1h`` or ``1d`` (None or ``window``: one period, the whole window)."""
    if text is None or text.strip() in ("", "window"):
        return None
    step = _duration(text, field)
    if step < dt.timedelta(minutes=1):
        raise CostQueryError(field, "at least 1m")
    periods = math.ceil((window.end - window.start) / step)
    if periods > MAX_PERIODS:
        raise CostQueryError(field, f"{text} makes {periods} periods of the window; at most {MAX_PERIODS}")
    return step


def parse_aggregate(text: str | None, *, field: str = "aggregate") -> tuple[str, ...]:
    """Comma-separated keys among ``AGGREGATES`` (None or empty: team)."""
    if text is None or not text.strip():
        return ("team",)
    keys = tuple(dict.fromkeys(part.strip() for part in text.split(",")))  # a key given twice counts once
    unknown = [key for key in keys if key not in AGGREGATES]
    if unknown:
        raise CostQueryError(
            field, f"unknown {', '.join(map(repr, unknown))}; choose from {', '.join(AGGREGATES)}"
        )
    return keys


def periods(window: Window, step: dt.timedelta | None, *, cut_at_months: bool = False) -> list[Window]:
    """The window cut into steps from its start (the last may be shorter), and at month boundaries too
    when asked (a FOCUS charge period lies within one billing period)."""
    bounds = {window.start, window.end}
    if step is not None:
        moment = window.start + step
        while moment < window.end:
            bounds.add(moment)
            moment += step
    if cut_at_months:
        month = month_bounds(window.start)[1]
        while month < window.end:
            bounds.add(month)
            month = month_bounds(month)[1]
    ordered = sorted(bounds)
    return [Window(a, b) for a, b in itertools.pairwise(ordered)]


# ------------------------------------------------------------------------------------------ slices


@dataclass(frozen=True)
class OfferFacts:
    """What a cost row says of an offer."""

    id: int
    key: str
    provider: str
    provider_display: str
    region: str
    """provider/code"""
    zone: str
    instance_type: str
    gpu_type: str
    gpus_per_instance: int
    purchase_option: str
    discount_bp: int
    latest_price_micro_usd: int | None


@dataclass
class CostSlice:
    """Cost of one offer's instances in one period, for one model (or idle) under one plan."""

    period: int
    offer: OfferFacts
    plan_id: int | None
    model: str
    team: str
    instance_hours: float = 0.0
    list_micro_usd: float = 0.0
    effective_micro_usd: float = 0.0

    @property
    def gpu_hours(self) -> float:
        return self.instance_hours * self.offer.gpus_per_instance

    def value(self, key: str) -> str:
        """The slice's value of an aggregate key."""
        if key in ("team", "model"):
            return self.team if key == "team" else self.model
        return str(getattr(self.offer, key))


def offer_facts(
    session: Session, offer_ids: Iterable[int], overlay: DiscountOverlay
) -> dict[int, OfferFacts]:
    ids = sorted(set(offer_ids))
    if not ids:
        return {}
    rows = session.scalars(
        sa.select(OfferRow)
        .where(OfferRow.id.in_(ids))
        .options(
            joinedload(OfferRow.instance_type).joinedload(InstanceTypeRow.gpu_type),
            joinedload(OfferRow.region).joinedload(RegionRow.provider),
        )
    ).all()
    out = {}
    for row in rows:
        provider: ProviderRow = row.region.provider
        bp = 0
        if overlay:
            offer = Offer(
                provider=provider.name,
                region=row.region.code,
                zone=row.zone,
                instance_type=row.instance_type.name,
                gpu_type=row.instance_type.gpu_type.name,
                gpus_per_instance=row.instance_type.gpu_count,
                purchase_option=row.purchase_option,
                term=row.term,
                upfront=row.upfront,
                price_micro_usd_per_hour=row.latest_price_micro_usd or 1,
            )
            rule = overlay.rule_for(offer)
            bp = rule.percent_off_bp if rule is not None else 0
        out[row.id] = OfferFacts(
            id=row.id,
            key=row.key,
            provider=provider.name,
            provider_display=provider.display_name or provider.name,
            region=f"{provider.name}/{row.region.code}",
            zone=row.zone,
            instance_type=row.instance_type.name,
            gpu_type=row.instance_type.gpu_type.name.value,
            gpus_per_instance=row.instance_type.gpu_count,
            purchase_option=row.purchase_option.value,
            discount_bp=bp,
            latest_price_micro_usd=row.latest_price_micro_usd,
        )
    return out


@dataclass(frozen=True)
class PriceHistory:
    """An offer's list price over time: piecewise constant from each observation."""

    times: tuple[dt.datetime, ...]
    prices: tuple[int, ...]

    def at(self, moment: dt.datetime) -> int:
        index = bisect.bisect_right(self.times, moment) - 1
        return self.prices[max(index, 0)]

    def changes_within(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        low = bisect.bisect_right(self.times, start)
        high = bisect.bisect_left(self.times, end)
        return list(self.times[low:high])


def _price_histories(
    session: Session, offers: dict[int, OfferFacts], until: dt.datetime
) -> dict[int, PriceHistory]:
    if not offers:
        return {}
    series: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)
    for offer_id, at, price in session.execute(
        sa.select(
            PriceObservationRow.offer_id,
            PriceObservationRow.observed_at,
            PriceObservationRow.price_micro_usd_per_hour,
        )
        .where(PriceObservationRow.offer_id.in_(sorted(offers)), PriceObservationRow.observed_at < until)
        .order_by(PriceObservationRow.offer_id, PriceObservationRow.observed_at, PriceObservationRow.id)
    ):
        points = series[offer_id]
        moment = _utc(at)
        if points and points[-1][0] == moment:
            points[-1] = (moment, price)  # two sources at one moment: the last stored stands
        else:
            points.append((moment, price))
    out = {}
    for offer_id, facts in offers.items():
        points = series.get(offer_id) or []
        if not points:
            latest = facts.latest_price_micro_usd or 0
            points = [(dt.datetime.min.replace(tzinfo=dt.UTC), latest)]
        out[offer_id] = PriceHistory(tuple(p[0] for p in points), tuple(p[1] for p in points))
    return out


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class PlanSplit:
    """Per offer id of a plan: (model, team, share of the placement's GPUs), idle included."""

    shares: dict[int, list[tuple[str, str, float]]]


def plan_splits(session: Session, plan_ids: Iterable[int]) -> dict[int, PlanSplit]:
    ids = sorted(set(plan_ids))
    if not ids:
        return {}
    models = {
        model_id: (name, team)
        for model_id, name, team in session.execute(
            sa.select(ServedModelRow.id, ServedModelRow.name, ServedModelRow.team)
        )
    }
    sizes = {
        (model_id, gpu_type_id): gpus
        for model_id, gpu_type_id, gpus in session.execute(
            sa.select(ModelProfileRow.model_id, ModelProfileRow.gpu_type_id, ModelProfileRow.gpus_per_replica)
        )
    }
    placements = session.execute(
        sa.select(
            PlanPlacementRow.id,
            PlanPlacementRow.plan_id,
            PlanPlacementRow.offer_id,
            PlanPlacementRow.instances,
            InstanceTypeRow.gpu_count,
            InstanceTypeRow.gpu_type_id,
        )
        .join(OfferRow, OfferRow.id == PlanPlacementRow.offer_id)
        .join(InstanceTypeRow, InstanceTypeRow.id == OfferRow.instance_type_id)
        .where(PlanPlacementRow.plan_id.in_(ids))
    ).all()
    replicas: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for placement_id, model_id, count in session.execute(
        sa.select(PlanReplicaRow.placement_id, PlanReplicaRow.model_id, PlanReplicaRow.replicas).where(
            PlanReplicaRow.placement_id.in_([p.id for p in placements])
        )
    ):
        replicas[placement_id].append((model_id, count))
    out: dict[int, PlanSplit] = {plan_id: PlanSplit({}) for plan_id in ids}
    for placement_id, plan_id, offer_id, instances, gpu_count, gpu_type_id in placements:
        total = instances * gpu_count
        parts: list[tuple[str, str, float]] = []
        used = 0
        for model_id, count in sorted(replicas[placement_id]):
            gpus = sizes.get((model_id, gpu_type_id), 0) * count
            name, team = models.get(model_id, (UNALLOCATED, UNALLOCATED))
            if gpus and total:
                parts.append((name, team, gpus / total))
                used += gpus
        if total and used < total:
            parts.append((IDLE, IDLE, (total - used) / total))
        out[plan_id].shares[offer_id] = parts or [(IDLE, IDLE, 1.0)]
    return out


def applied_epochs(session: Session) -> list[tuple[dt.datetime, int]]:
    """(when, plan id) of every plan applied or partially applied, in time order (from the audit log)."""
    rows = session.execute(
        sa.select(AuditLogRow.entity_id, sa.func.min(AuditLogRow.at))
        .where(
            AuditLogRow.entity_type == "plan",
            AuditLogRow.action.in_([f"plan.{s.value}" for s in APPLIED_STATES]),
        )
        .group_by(AuditLogRow.entity_id)
    ).all()
    epochs = []
    for entity_id, at in rows:
        if str(entity_id).isdigit():
            epochs.append((_utc(at), int(entity_id)))
    return sorted(epochs)


@dataclass(frozen=True)
class _Epochs:
    times: tuple[dt.datetime, ...]
    newest: tuple[int, ...]
    """Highest plan id applied at or before each time."""

    @classmethod
    def of(cls, epochs: Sequence[tuple[dt.datetime, int]]) -> _Epochs:
        newest, best = [], -1
        for _, plan_id in epochs:
            best = max(best, plan_id)
            newest.append(best)
        return cls(tuple(at for at, _ in epochs), tuple(newest))

    def plan_at(self, moment: dt.datetime, launched_by: int | None) -> int | None:
        index = bisect.bisect_right(self.times, moment) - 1
        applied = self.newest[index] if index >= 0 else None
        candidates = [p for p in (applied, launched_by) if p is not None]
        return max(candidates) if candidates else None

    def changes_within(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        low = bisect.bisect_right(self.times, start)
        high = bisect.bisect_left(self.times, end)
        return list(self.times[low:high])


def _instance_span(row: FleetInstanceRow, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = _utc(row.launched_at or row.first_seen_at)
    if row.ended_at is not None:
        end = _utc(row.ended_at)
    elif row.state in HELD:
        end = now
    else:
        end = _utc(row.last_seen_at)
    return start, min(end, now)


@dataclass
class FleetCosts:
    """The fleet's cost slices over a list of periods."""

    periods: list[Window]
    slices: list[CostSlice] = field(default_factory=list)

    def total_effective_micro_usd(self) -> float:
        return sum(s.effective_micro_usd for s in self.slices)


def fleet_costs(session: Session, periods_: Sequence[Window], *, now: dt.datetime) -> FleetCosts:
    """The fleet's cost in each period (up to ``now``), split by offer, plan, model and team."""
    out = FleetCosts(list(periods_))
    if not periods_:
        return out
    start, end = periods_[0].start, min(periods_[-1].end, now)
    if end <= start:
        return out
    instances = session.scalars(
        sa.select(FleetInstanceRow).where(
            FleetInstanceRow.offer_id.is_not(None),
            sa.func.coalesce(FleetInstanceRow.launched_at, FleetInstanceRow.first_seen_at) < end,
            sa.or_(FleetInstanceRow.ended_at.is_(None), FleetInstanceRow.ended_at > start),
        )
    ).all()
    spans = []
    for row in instances:
        a, b = _instance_span(row, now)
        a, b = max(a, start), min(b, end)
        if b > a:
            spans.append((row, a, b))
    if not spans:
        return out
    overlay = active_discounts(session)
    offers = offer_facts(session, {row.offer_id for row, _, _ in spans if row.offer_id is not None}, overlay)
    prices = _price_histories(session, offers, end)
    epochs = _Epochs.of(applied_epochs(session))
    plan_ids = set(epochs.newest) | {row.plan_id for row, _, _ in spans if row.plan_id is not None}
    splits = plan_splits(session, plan_ids)
    bounds = [p.start for p in periods_] + [periods_[-1].end]
    acc: dict[tuple[int, int, int | None, str, str], CostSlice] = {}
    for row, a, b in spans:
        assert row.offer_id is not None
        offer, history = offers[row.offer_id], prices[row.offer_id]
        cuts = {a, b}
        cuts.update(t for t in bounds if a < t < b)
        cuts.update(history.changes_within(a, b))
        cuts.update(epochs.changes_within(a, b))
        ordered = sorted(cuts)
        for s, e in itertools.pairwise(ordered):
            period = bisect.bisect_right(bounds, s) - 1
            hours = (e - s).total_seconds() / SECONDS_PER_HOUR
            price = history.at(s)
            effective = discounted_price(price, offer.discount_bp) if offer.discount_bp else price
            plan_id = epochs.plan_at(s, row.plan_id)
            if plan_id is None:
                parts = [(UNALLOCATED, UNALLOCATED, 1.0)]
            else:
                parts = splits[plan_id].shares.get(offer.id) or [(IDLE, IDLE, 1.0)]
            for model, team, share in parts:
                key = (period, offer.id, plan_id, model, team)
                slice_ = acc.get(key)
                if slice_ is None:
                    slice_ = acc[key] = CostSlice(period, offer, plan_id, model, team)
                slice_.instance_hours += hours * share
                slice_.list_micro_usd += price * hours * share
                slice_.effective_micro_usd += effective * hours * share
    out.slices = sorted(acc.values(), key=lambda s: (s.period, s.offer.key, s.plan_id or 0, s.model))
    return out


# ---------------------------------------------------------------------------------------- allocation


@dataclass(frozen=True)
class Allocation:
    name: str
    properties: dict[str, str]
    instance_hours: float
    gpu_hours: float
    list_micro_usd: float
    effective_micro_usd: float


@dataclass(frozen=True)
class AllocationSet:
    window: Window
    allocations: tuple[Allocation, ...]

    @property
    def effective_micro_usd(self) -> float:
        return sum(a.effective_micro_usd for a in self.allocations)


def _group(slices: Iterable[CostSlice], keys: Sequence[str]) -> tuple[Allocation, ...]:
    groups: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for s in slices:
        values = groups[tuple(s.value(key) for key in keys)]
        values[0] += s.instance_hours
        values[1] += s.gpu_hours
        values[2] += s.list_micro_usd
        values[3] += s.effective_micro_usd
    allocations = [
        Allocation(
            name="/".join(names),
            properties=dict(zip(keys, names, strict=True)),
            instance_hours=v[0],
            gpu_hours=v[1],
            list_micro_usd=v[2],
            effective_micro_usd=v[3],
        )
        for names, v in groups.items()
    ]
    return tuple(sorted(allocations, key=lambda a: (-a.effective_micro_usd, a.name)))


def allocation(
    session: Session, window: Window, step: dt.timedelta | None, keys: Sequence[str], *, now: dt.datetime
) -> tuple[list[AllocationSet], tuple[Allocation, ...]]:
    """The fleet's cost per period grouped by ``keys`` (most expensive first), and over the whole window."""
    costs = fleet_costs(session, periods(window, step), now=now)
    by_period: dict[int, list[CostSlice]] = defaultdict(list)
    for s in costs.slices:
        by_period[s.period].append(s)
    sets = [AllocationSet(p, _group(by_period.get(i, []), keys)) for i, p in enumerate(costs.periods)]
    return sets, _group(costs.slices, keys)


# ------------------------------------------------------------------------------- spend and forecast


@dataclass(frozen=True)
class SpendForecast:
    now: dt.datetime
    month_start: dt.datetime
    month_end: dt.datetime
    spent_micro_usd: dict[str, float]
    """Month to date by ``(global)`` and team (idle and unallocated count in the global figure only)."""
    burn_micro_usd_per_hour: dict[str, float]
    """The running fleet's cost per hour now, same keys."""
    budgets: tuple[BudgetForecast, ...]
    monthly_growth: float


def burn_rates(session: Session, *, now: dt.datetime) -> dict[str, float]:
    """The running fleet's effective cost per hour now, ``(global)`` and per team."""
    instant = Window(now - dt.timedelta(seconds=1), now)
    costs = fleet_costs(session, [instant], now=now)
    rates: dict[str, float] = defaultdict(float)
    for s in costs.slices:
        per_hour = s.effective_micro_usd * SECONDS_PER_HOUR  # one second's cost, per hour
        rates[GLOBAL] += per_hour
        rates[s.team] += per_hour
    return dict(rates)


def spend_forecast(session: Session, *, now: dt.datetime, monthly_growth: float = 0.0) -> SpendForecast:
    """Month-to-date spend from the fleet's history, the burn rate now, and each budget's month-end forecast,
    headroom and run-out time (``forecast.forecast_budgets``)."""
    start, end = month_bounds(now)
    spent: dict[str, float] = defaultdict(float)
    if now > start:
        for s in fleet_costs(session, [Window(start, now)], now=now).slices:
            spent[GLOBAL] += s.effective_micro_usd
            spent[s.team] += s.effective_micro_usd
    rates = burn_rates(session, now=now)
    budgets = read_fleet(session).policy.budgets
    costs = {GLOBAL: round(rates.get(GLOBAL, 0.0))}
    costs.update({key: round(value) for key, value in rates.items()})
    for budget in budgets:
        if budget.team is not None:
            costs.setdefault(budget.team, 0)
    forecasts = forecast_budgets(
        costs,
        budgets,
        now=now,
        monthly_growth=monthly_growth,
        spent={key: round(spent.get(key, 0.0)) for key in costs},
    )
    return SpendForecast(
        now=now,
        month_start=start,
        month_end=end,
        spent_micro_usd=dict(spent),
        burn_micro_usd_per_hour=rates,
        budgets=tuple(forecasts),
        monthly_growth=monthly_growth,
    )


# ------------------------------------------------------------------------------------ unit costs


@dataclass(frozen=True)
class ModelUnitCost:
    model: str
    team: str
    replicas: int
    gpus: int
    cost_micro_usd_per_hour: int
    demand_tokens_per_s: int
    capacity_tokens_per_s: int
    """What the replicas serve at full load (profile throughput x replicas)."""

    @property
    def utilisation(self) -> float | None:
        return self.demand_tokens_per_s / self.capacity_tokens_per_s if self.capacity_tokens_per_s else None

    @property
    def usd_per_million_tokens(self) -> float | None:
        """At the planned utilisation: the model's cost per hour over its demand's tokens in an hour."""
        tokens_per_hour = self.demand_tokens_per_s * SECONDS_PER_HOUR
        return self.cost_micro_usd_per_hour / tokens_per_hour if tokens_per_hour else None

    @property
    def usd_per_million_tokens_at_capacity(self) -> float | None:
        tokens_per_hour = self.capacity_tokens_per_s * SECONDS_PER_HOUR
        return self.cost_micro_usd_per_hour / tokens_per_hour if tokens_per_hour else None


@dataclass(frozen=True)
class UnitCosts:
    plan_id: int
    plan_status: PlanStatus
    target_utilisation: float
    models: tuple[ModelUnitCost, ...]
    idle_micro_usd_per_hour: int
    cost_micro_usd_per_hour: int


def chosen_plan(session: Session, plan_id: int | None = None) -> PlanRow:
    """The plan asked for, else the plan the fleet runs (newest applied), else the newest open plan."""
    if plan_id is not None:
        row = session.get(PlanRow, plan_id)
        if row is None:
            raise NoPlanError(f"no plan {plan_id}")
        return row
    for states in (APPLIED_STATES, OPEN_STATES):
        row = session.scalar(
            sa.select(PlanRow).where(PlanRow.status.in_(states)).order_by(PlanRow.id.desc()).limit(1)
        )
        if row is not None:
            return row
    raise NoPlanError("no plan applied or open: make one with `gpuplan plan` or POST /v1/plans")


def unit_costs(session: Session, plan_id: int | None = None) -> UnitCosts:
    """Dollars per million tokens per model at the plan's utilisation (its cost split by GPUs, over the
    demand it serves), and at full capacity."""
    row = chosen_plan(session, plan_id)
    problem = plan_problem(row)
    plan = read_stored_plan(session, row.id)
    offers = {offer.key: offer for offer in problem.offers}
    cost: dict[str, int] = defaultdict(int)
    gpus: dict[str, int] = defaultdict(int)
    replicas: dict[str, int] = defaultdict(int)
    capacity: dict[str, int] = defaultdict(int)
    idle = 0
    for allocated in cost_allocation(problem, plan):
        if allocated.model == IDLE:
            idle += allocated.cost_micro_usd_per_hour
            continue
        cost[allocated.model] += allocated.cost_micro_usd_per_hour
        gpus[allocated.model] += allocated.gpus
    models = {model.name: model for model in problem.models}
    for placement in plan.placements:
        gpu_type = offers[placement.offer_key].gpu_type
        for count in placement.replicas:
            profile = models[count.model].profile_for(gpu_type)
            replicas[count.model] += count.replicas
            if profile is not None:
                capacity[count.model] += count.replicas * profile.tokens_per_s_per_replica
    demand: dict[str, int] = defaultdict(int)
    for d in problem.demand:
        demand[d.model] += d.tokens_per_s
    rows = tuple(
        ModelUnitCost(
            model=name,
            team=models[name].team,
            replicas=replicas.get(name, 0),
            gpus=gpus.get(name, 0),
            cost_micro_usd_per_hour=cost.get(name, 0),
            demand_tokens_per_s=demand.get(name, 0),
            capacity_tokens_per_s=capacity.get(name, 0),
        )
        for name in sorted(models)
    )
    return UnitCosts(
        plan_id=row.id,
        plan_status=row.status,
        target_utilisation=problem.policy.target_utilisation,
        models=rows,
        idle_micro_usd_per_hour=idle,
        cost_micro_usd_per_hour=row.cost_micro_usd_per_hour,
    )
