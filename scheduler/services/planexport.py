"""Exports of a stored plan: its plan file (docs/formats.md, "Plan file") and its routing table for a
global load balancer.

``stored_plan_file`` rebuilds the plan file a solve writes from what the plan stored: the problem it was
computed from, its placements and routes, cost, bound, parameters, explanations and statistics
(baselines are not stored with a plan, so the file has none).

``routing_table`` turns the plan's routes into weights per demand source: for each source and model, the
regions its traffic goes to with their shares, and for each source across its models (weighted by the
demand the plan was computed for, tokens/s) the regions of one shared endpoint. Shares are rounded to
millionths and weights to whole percent by the largest remainder, so that each group sums to exactly 1
and 100: a DNS weighted record set (weights as integers) or a proxy's weighted upstreams can be made from
either.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from scheduler.db.models import PlanRow, PlanStatus
from scheduler.services.planfile import ExplanationEntry, PlanFile, build_plan_file
from scheduler.services.planning import read_stored_plan
from scheduler.services.plans import get_plan, plan_problem
from solver.problem import Problem, SolveParams
from solver.result import SolveResult, SolveStatus

SHARE_UNITS = 1_000_000
"""Shares are given to the millionth."""
ALL_MODELS = "*"
"""The model of a source's rows across all its models (one shared endpoint)."""


PROBLEM_CACHE_SIZE = 16
_problems: dict[str, Problem] = {}
_problems_lock = threading.Lock()


def stored_problem(row: PlanRow) -> Problem:
    """The problem a plan was computed from. Parsing it takes tens of milliseconds, and a stored plan's
    problem never changes, so the last few are kept by their SHA-256 (``problem_hash``): plans with the
    same hash had the same problem, whichever database they are in."""
    key = row.problem_hash
    if key is None:
        return plan_problem(row)
    with _problems_lock:
        found = _problems.get(key)
    if found is not None:
        return found
    problem = plan_problem(row)
    with _problems_lock:
        _problems[key] = problem
        while len(_problems) > PROBLEM_CACHE_SIZE:
            del _problems[next(iter(_problems))]
    return problem


def stored_result(session: Session, row: PlanRow) -> SolveResult:
    """The solve result a stored plan came from, as far as the plan keeps it."""
    explained = row.explanations or {}
    return SolveResult(
        status=SolveStatus(row.solver_status),
        plan=read_stored_plan(session, row.id),
        cost_micro_usd_per_hour=row.cost_micro_usd_per_hour,
        lower_bound_micro_usd_per_hour=row.lower_bound_micro_usd_per_hour,
        wall_time_s=(row.wall_time_ms or 0) / 1000,
        params=SolveParams.model_validate(row.parameters or {}),
        explanations=tuple(
            ExplanationEntry.model_validate(e).to_explanation() for e in explained.get("explanations") or ()
        ),
        stats=dict(explained.get("stats") or {}),
    )


def stored_plan_file(session: Session, plan_id: int) -> PlanFile:
    row = get_plan(session, plan_id)
    return build_plan_file(
        stored_problem(row), stored_result(session, row), scenario="database", created_at=row.created_at
    )


# ------------------------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class RegionWeight:
    region: str
    """Region key, provider/code."""
    provider: str
    region_code: str
    share: float
    """Of the group's traffic, to the millionth; a group's shares sum to 1."""
    weight_percent: int
    """Whole percent; a group's weights sum to 100 (a region with a tiny share may get 0)."""


@dataclass(frozen=True)
class ModelRouting:
    model: str
    tokens_per_s: float
    regions: tuple[RegionWeight, ...]


@dataclass(frozen=True)
class SourceRouting:
    source: str
    country: str
    lat: float
    lon: float
    tokens_per_s: float
    """The source's demand over all models, as the plan was computed for it."""
    regions: tuple[RegionWeight, ...]
    """All models together, weighted by their demand: one endpoint for the source."""
    models: tuple[ModelRouting, ...]


@dataclass(frozen=True)
class RoutingTable:
    plan_id: int
    plan_status: PlanStatus
    sources: tuple[SourceRouting, ...]


def apportion(amounts: Sequence[float], total: int) -> list[int]:
    """Integers proportional to ``amounts`` summing to ``total`` (largest remainder; ties to the first)."""
    whole = sum(amounts)
    if whole <= 0:
        raise ValueError("nothing to apportion")
    exact = [amount / whole * total for amount in amounts]
    parts = [math.floor(value) for value in exact]
    left = total - sum(parts)
    order = sorted(range(len(amounts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


def _weights(amounts: dict[str, float]) -> tuple[RegionWeight, ...]:
    regions = sorted(region for region, amount in amounts.items() if amount > 0)
    values = [amounts[region] for region in regions]
    shares = apportion(values, SHARE_UNITS)
    percents = apportion(values, 100)
    out = []
    for region, share, percent in zip(regions, shares, percents, strict=True):
        provider, _, code = region.partition("/")
        out.append(
            RegionWeight(
                region=region,
                provider=provider,
                region_code=code,
                share=share / SHARE_UNITS,
                weight_percent=percent,
            )
        )
    return tuple(out)


def routing_table(session: Session, plan_id: int) -> RoutingTable:
    row = get_plan(session, plan_id)
    problem = stored_problem(row)
    plan = read_stored_plan(session, plan_id)
    demand = {(d.model, d.source): float(d.tokens_per_s) for d in problem.demand}
    by_group: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for route in plan.routes:
        by_group[(route.source, route.model)][route.region] += route.share
    sources = []
    for source in sorted(problem.sources, key=lambda s: s.name):
        models = []
        across: dict[str, float] = defaultdict(float)
        for (name, model), regions in sorted(by_group.items()):
            if name != source.name or sum(regions.values()) <= 0:
                continue
            tokens = demand.get((model, name), 0.0)
            models.append(ModelRouting(model=model, tokens_per_s=tokens, regions=_weights(regions)))
            total = sum(regions.values())
            for region, share in regions.items():
                across[region] += tokens * share / total
        if not models:
            continue
        sources.append(
            SourceRouting(
                source=source.name,
                country=source.country,
                lat=source.lat,
                lon=source.lon,
                tokens_per_s=sum(m.tokens_per_s for m in models),
                regions=_weights(across) if sum(across.values()) > 0 else (),
                models=tuple(models),
            )
        )
    return RoutingTable(plan_id=plan_id, plan_status=row.status, sources=tuple(sources))


CSV_COLUMNS = (
    "plan_id",
    "source",
    "source_country",
    "source_lat",
    "source_lon",
    "model",
    "region",
    "provider",
    "region_code",
    "share",
    "weight_percent",
    "tokens_per_s",
)


def routing_csv(table: RoutingTable) -> str:
    """One row per (source, model, region), and per (source, ``*``, region) for all models together;
    the shares of one (source, model) sum to 1 and the weights to 100."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for source in table.sources:
        groups = [(ALL_MODELS, source.tokens_per_s, source.regions)] + [
            (m.model, m.tokens_per_s, m.regions) for m in source.models
        ]
        for model, tokens, regions in groups:
            for weight in regions:
                writer.writerow(
                    (
                        table.plan_id,
                        source.source,
                        source.country,
                        source.lat,
                        source.lon,
                        model,
                        weight.region,
                        weight.provider,
                        weight.region_code,
                        f"{weight.share:.6f}",
                        weight.weight_percent,
                        f"{tokens:g}",
                    )
                )
    return out.getvalue()
