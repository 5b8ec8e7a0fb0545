"""Month-end cost forecasts against budgets, from a plan's cost and a demand trend.

The plan's cost per hour (globally and per team) is taken to grow with demand at ``monthly_growth``
(compounded continuously: cost(t) = cost now x (1 + growth) ^ (hours from now / 730)); a plan's cost
follows its demand roughly in proportion, which is the assumption here (re-solving at the grown demand,
a what-if, is the exact figure). Spend so far this month is given, or taken as the plan's cost for the
hours already past. Each budget (monthly limit) gets: the month-end cost, the headroom, the date and
hour the month's spend would reach the limit, and the first date (within ``horizon_months``) the
monthly run rate exceeds it.

Pure: ``now`` is given by the caller (timezone-aware UTC); money in integer micro-USD.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from solver.domain import Budget, BudgetScope
from solver.units import HOURS_PER_MONTH

GLOBAL = "(global)"
"""Key of the whole plan's cost in the cost mappings."""


class ForecastError(ValueError):
    """Bad forecast input (naive time, unknown team); the message names it."""


@dataclass(frozen=True)
class BudgetForecast:
    scope: BudgetScope
    team: str | None
    limit_micro_usd_per_month: int
    cost_micro_usd_per_hour: int
    """The plan's cost per hour now, for this budget's scope."""
    spent_micro_usd: int
    """Spend from the start of the month to now."""
    month_end_micro_usd: int
    headroom_micro_usd: int
    """Limit minus month-end cost (negative: over budget)."""
    runs_out_at: dt.datetime | None
    """When this month's spend reaches the limit; None if it does not this month."""
    run_rate_exceeds_on: dt.date | None
    """First day the monthly run rate (cost per hour x 730) exceeds the limit, within the horizon."""


def month_bounds(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def _rate(cost_now: int, growth: float, hours_from_now: float) -> float:
    return float(cost_now * (1.0 + growth) ** (hours_from_now / HOURS_PER_MONTH))


def forecast_budgets(
    costs: Mapping[str, int],
    budgets: Sequence[Budget],
    *,
    now: dt.datetime,
    monthly_growth: float = 0.0,
    spent: Mapping[str, int] | None = None,
    horizon_months: int = 12,
) -> list[BudgetForecast]:
    """One forecast per budget. ``costs``: micro-USD per hour now, ``GLOBAL`` and per team; ``spent``:
    spend so far this month by the same keys (default: cost now x hours past)."""
    if now.utcoffset() is None:
        raise ForecastError(f"now: {now.isoformat()} has no time zone; give a timezone-aware UTC time")
    if monthly_growth <= -1.0:
        raise ForecastError(f"monthly_growth must be above -1 (-100%), got {monthly_growth}")
    now = now.astimezone(dt.UTC)
    start, end = month_bounds(now)
    past_h = (now - start).total_seconds() / 3600.0
    left_h = (end - now).total_seconds() / 3600.0
    out = []
    for budget in budgets:
        key = GLOBAL if budget.scope is BudgetScope.GLOBAL else str(budget.team)
        if key not in costs:
            raise ForecastError(
                f"no cost for the budget of team {budget.team!r} (teams: {', '.join(sorted(costs))})"
            )
        cost_now = costs[key]
        so_far = (spent or {}).get(key, round(cost_now * past_h))
        limit = budget.limit_micro_usd_per_month
        # Hour by hour to the end of the month (at most 744 steps), noting when spend reaches the limit.
        total, runs_out_at = float(so_far), None
        if total >= limit:
            runs_out_at = now
        step, hours = 0, math.ceil(left_h)
        while step < hours:
            width = min(1.0, left_h - step)
            rate = _rate(cost_now, monthly_growth, step + width / 2)
            if runs_out_at is None and total + rate * width >= limit and rate > 0:
                runs_out_at = now + dt.timedelta(hours=step + (limit - total) / rate)
            total += rate * width
            step += 1
        exceeds = None
        if cost_now * HOURS_PER_MONTH > limit:
            exceeds = now.date()
        elif cost_now > 0 and monthly_growth > 0:
            hours_until = (
                HOURS_PER_MONTH * math.log(limit / (cost_now * HOURS_PER_MONTH)) / math.log1p(monthly_growth)
            )
            if hours_until <= horizon_months * HOURS_PER_MONTH:
                exceeds = (now + dt.timedelta(hours=hours_until)).date()
        month_end = round(total)
        out.append(
            BudgetForecast(
                scope=budget.scope,
                team=budget.team,
                limit_micro_usd_per_month=limit,
                cost_micro_usd_per_hour=cost_now,
                spent_micro_usd=int(so_far),
                month_end_micro_usd=month_end,
                headroom_micro_usd=limit - month_end,
                runs_out_at=runs_out_at,
                run_rate_exceeds_on=exceeds,
            )
        )
    return out
