"""Hourly demand over a representative week, per model and source: the input of commitment planning.

A ``DemandProfile`` holds one series of hourly tokens/s per (model, source), all of the same length
(168 hours for a week), hour 0 starting at ``start`` (timezone-aware UTC, a Monday 00:00 when the
profile is generated). It comes from a CSV file (``parse_profile_csv``: one row per hour, model and
source, timestamps in UTC) or is generated from the placement problem's busy-hour demand with a daily
and a weekly shape in each source's local time (``weekly_profile``).

Pure: text in, typed profile out; every problem of a file is reported in one ``ProfileError``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections import defaultdict
from typing import Annotated, Self

from pydantic import Field, NonNegativeInt, model_validator

from solver.domain import DomainModel, Name
from solver.problem import Problem

HOURS_PER_WEEK = 168
HOURS_PER_DAY = 24
WEEK_START = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)
"""Hour 0 of a generated profile: a Monday, 00:00 UTC. Only the weekday and hour matter."""

PROFILE_COLUMNS = ("hour", "model", "source", "tokens_per_s")
"""Columns of a profile CSV file (docs/planners.md, "Demand profiles")."""

MAX_LISTED = 5
"""Missing hours listed by name in an error before the rest are counted."""


class ProfileError(ValueError):
    """A demand profile is malformed; ``problems`` holds one line per problem, each naming its place."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {line}" for line in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{source}: {len(problems)} problem(s)\n{shown}{more}")


class DemandSeries(DomainModel):
    model: Name
    source: Name
    tokens_per_s: tuple[NonNegativeInt, ...] = Field(min_length=1)
    """Output tokens per second in each hour of the profile."""

    @property
    def peak(self) -> int:
        return max(self.tokens_per_s)


class DemandProfile(DomainModel):
    """Hourly demand per (model, source), every series the same length, hour 0 at ``start`` (UTC)."""

    start: dt.datetime = WEEK_START
    series: tuple[DemandSeries, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = []
        offset = self.start.utcoffset()
        if offset is None or offset != dt.timedelta(0):
            problems.append(f"start: {self.start.isoformat()} is not timezone-aware UTC")
        lengths = {len(item.tokens_per_s) for item in self.series}
        if len(lengths) > 1:
            problems.append(f"series: every series needs the same number of hours, found {sorted(lengths)}")
        seen: set[tuple[str, str]] = set()
        for index, item in enumerate(self.series):
            if (item.model, item.source) in seen:
                problems.append(f"series[{index}]: {item.model} from {item.source} appears twice")
            seen.add((item.model, item.source))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def hours(self) -> int:
        return len(self.series[0].tokens_per_s)

    def of(self, model: str, source: str) -> tuple[int, ...] | None:
        for item in self.series:
            if item.model == model and item.source == source:
                return item.tokens_per_s
        return None

    def scaled(self, factor: float) -> DemandProfile:
        """Every hour's demand times ``factor`` (rounded half up to whole tokens/s)."""
        if not factor >= 0:
            raise ValueError(f"factor must be >= 0, got {factor}")
        return self.model_copy(
            update={
                "series": tuple(
                    item.model_copy(
                        update={
                            "tokens_per_s": tuple(math.floor(v * factor + 0.5) for v in item.tokens_per_s)
                        }
                    )
                    for item in self.series
                )
            }
        )

    def check_against(self, problem: Problem) -> list[str]:
        """Models and sources the problem does not have, one line each (empty when all resolve)."""
        models = {model.name for model in problem.models}
        sources = {source.name for source in problem.sources}
        problems = []
        for index, item in enumerate(self.series):
            if item.model not in models:
                problems.append(f"series[{index}].model: unknown model {item.model!r}")
            if item.source not in sources:
                problems.append(f"series[{index}].source: unknown source {item.source!r}")
        return problems

    def hour_start(self, hour: int) -> dt.datetime:
        return self.start + dt.timedelta(hours=hour)


# ---------------------------------------------------------------------------------------- generated


Share = Annotated[float, Field(ge=0.0, le=1.0)]


class WeeklyShape(DomainModel):
    """A daily and a weekly shape of demand, in each source's local time.

    Demand at a local hour is ``peak x weekday factor x (trough + (1 - trough) x bell)``, where the bell
    is a raised cosine that is 1 at ``peak_local_hour`` and 0 twelve hours away, and the weekday factor
    is 1 Monday to Friday and ``weekend_share`` on Saturday and Sunday. So the busy hour of a weekday is
    the peak demand and the quietest night hour ``trough_share`` of it.
    """

    trough_share: Share = 0.35
    peak_local_hour: Annotated[int, Field(ge=0, le=23)] = 14
    weekend_share: Share = 0.7

    def factor(self, local_hour_of_week: int) -> float:
        day, hour = divmod(local_hour_of_week % HOURS_PER_WEEK, HOURS_PER_DAY)
        bell = 0.5 * (1.0 + math.cos(2.0 * math.pi * (hour - self.peak_local_hour) / HOURS_PER_DAY))
        weekday = 1.0 if day < 5 else self.weekend_share
        return weekday * (self.trough_share + (1.0 - self.trough_share) * bell)


def utc_offset_hours(lon: float) -> int:
    """A source's local time offset from its longitude (15 degrees per hour), for generated shapes."""
    return round(lon / 15.0)


def weekly_profile(
    problem: Problem, shape: WeeklyShape | None = None, *, start: dt.datetime = WEEK_START
) -> DemandProfile:
    """One week of hourly demand per (model, source): the problem's demand is each series' busy hour.

    ``start`` must be a Monday 00:00 UTC for the weekday pattern to fall on the right days.
    """
    shape = shape or WeeklyShape()
    if start.utcoffset() != dt.timedelta(0) or start.weekday() != 0 or start.hour or start.minute:
        raise ValueError(f"start must be a Monday 00:00 UTC, got {start.isoformat()}")
    sources = {source.name: source for source in problem.sources}
    series = []
    for demand in problem.demand:
        offset = utc_offset_hours(sources[demand.source].lon)
        values = tuple(
            math.floor(demand.tokens_per_s * shape.factor(hour + offset) + 0.5)
            for hour in range(HOURS_PER_WEEK)
        )
        series.append(DemandSeries(model=demand.model, source=demand.source, tokens_per_s=values))
    return DemandProfile(start=start, series=tuple(series))


# -------------------------------------------------------------------------------------------- CSV


def _parse_hour(text: str) -> tuple[dt.datetime | None, str | None]:
    """A timestamp on the hour in UTC, or the reason it is not one."""
    value = text.strip()
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None, f"not an ISO 8601 timestamp: {value!r}"
    offset = moment.utcoffset()
    if offset is None:
        return None, f"{value!r} has no time zone: write hours in UTC (2026-11-16T00:00:00Z)"
    if offset != dt.timedelta(0):
        return None, f"{value!r} is not in UTC (offset {offset}): write hours in UTC (2026-11-16T00:00:00Z)"
    if moment.minute or moment.second or moment.microsecond:
        return None, f"{value!r} is not on the hour"
    return moment.astimezone(dt.UTC), None


def parse_profile_csv(
    text: str, *, source: str = "profile.csv", hours: int = HOURS_PER_WEEK
) -> DemandProfile:
    """A profile from CSV text with columns hour (UTC), model, source, tokens_per_s.

    Every (model, source) must have every one of ``hours`` consecutive hours from the earliest hour in
    the file, once, with a whole non-negative tokens/s. Problems are reported together, by line and
    column, and gaps by series with the missing hours.
    """
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip() for cell in next(reader, [])]
    if not header:
        raise ProfileError(source, ["line 1: empty file (no header)"])
    missing = [column for column in PROFILE_COLUMNS if column not in header]
    unknown = [column for column in header if column not in PROFILE_COLUMNS]
    if missing:
        problems.append(
            f"line 1: missing column(s) {', '.join(missing)} (expected {', '.join(PROFILE_COLUMNS)})"
        )
    if unknown:
        problems.append(
            f"line 1: unknown column(s) {', '.join(unknown)} (expected {', '.join(PROFILE_COLUMNS)})"
        )
    if problems:
        raise ProfileError(source, problems)
    position = {column: header.index(column) for column in PROFILE_COLUMNS}
    values: dict[tuple[str, str], dict[dt.datetime, int]] = defaultdict(dict)
    first_line: dict[tuple[str, str, dt.datetime], int] = {}
    for record in reader:
        line = reader.line_num
        if not record or not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.append(f"line {line}: expected {len(header)} fields, found {len(record)}")
            continue
        cells = {column: record[position[column]].strip() for column in PROFILE_COLUMNS}
        moment, reason = _parse_hour(cells["hour"])
        if reason is not None:
            problems.append(f"line {line}, column hour: {reason}")
        for column in ("model", "source"):
            if not cells[column]:
                problems.append(f"line {line}, column {column}: empty")
        try:
            tokens = int(cells["tokens_per_s"])
        except ValueError:
            problems.append(
                f"line {line}, column tokens_per_s: not a whole number: {cells['tokens_per_s']!r}"
            )
            continue
        if tokens < 0:
            problems.append(f"line {line}, column tokens_per_s: negative demand {tokens}")
            continue
        if moment is None or not cells["model"] or not cells["source"]:
            continue
        key = (cells["model"], cells["source"])
        if (key[0], key[1], moment) in first_line:
            problems.append(
                f"line {line}: {key[0]} from {key[1]} at {moment.isoformat()} appears twice "
                f"(first on line {first_line[(key[0], key[1], moment)]})"
            )
            continue
        first_line[(key[0], key[1], moment)] = line
        values[key][moment] = tokens
    if not values and not problems:
        problems.append("no rows after the header")
    if problems:
        raise ProfileError(source, problems)
    start = min(moment for by_hour in values.values() for moment in by_hour)
    expected = [start + dt.timedelta(hours=h) for h in range(hours)]
    expected_set = set(expected)
    series = []
    for (model, demand_source), by_hour in values.items():
        gaps = [moment for moment in expected if moment not in by_hour]
        extra = sorted(moment for moment in by_hour if moment not in expected_set)
        if gaps:
            listed = ", ".join(_short(moment) for moment in gaps[:MAX_LISTED])
            more = f" and {len(gaps) - MAX_LISTED} more" if len(gaps) > MAX_LISTED else ""
            problems.append(f"{model} from {demand_source}: {len(gaps)} hour(s) missing: {listed}{more}")
        if extra:
            problems.append(
                f"{model} from {demand_source}: {len(extra)} hour(s) outside the {hours} hours from "
                f"{_short(start)}, first {_short(extra[0])}"
            )
        if not gaps and not extra:
            series.append(
                DemandSeries(
                    model=model, source=demand_source, tokens_per_s=tuple(by_hour[m] for m in expected)
                )
            )
    if problems:
        raise ProfileError(source, problems)
    return DemandProfile(start=start, series=tuple(series))


def _short(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def profile_csv(profile: DemandProfile) -> str:
    """The profile as CSV text in the format ``parse_profile_csv`` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PROFILE_COLUMNS)
    for hour in range(profile.hours):
        stamp = _short(profile.hour_start(hour)).replace("Z", ":00Z")
        for item in profile.series:
            writer.writerow((stamp, item.model, item.source, item.tokens_per_s[hour]))
    return out.getvalue()
