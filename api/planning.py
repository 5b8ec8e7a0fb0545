"""The planners' Python API: load a fleet, solve, ask what if, and read every answer as a DataFrame.

One import path::

    from api.planning import Planner, PriceShock, RegionLost, DemandGrowth

    planner = Planner.sample()                      # or .from_scenario(path) / .from_database()
    base = planner.solve(time_limit_s=30)
    base.summary()                                  # one row: cost, bound, gap, ...
    base.allocation(by="team")                      # cost per team
    planner.compare(
        PriceShock(factor=1.3, providers="aws"),
        [RegionLost(regions="aws/us-east-1"), DemandGrowth(factor=1.2)],
    )                                               # one row per plan, deltas against the base

Every DataFrame has the columns and dtypes its schema in ``api.frames`` states (docs/planners.md lists
them). Money is integer micro-USD (``to_usd`` converts a column). Studies (``compare``, ``sweep``, the
frontiers, ``commitments``) run their solves on a local process pool by default, or on a Dask cluster
(``Planner(..., cluster="tcp://scheduler:8786")`` or a ``distributed.Client``), in the solver's
deterministic mode, so results do not depend on where they ran. Nothing here changes the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from distributed import Client
from sqlalchemy.orm import Session

from api.frames import (
    ALLOCATION,
    BASELINES,
    COMMITMENT_HOURLY,
    COMMITMENT_RISK,
    COMMITMENT_SUMMARY,
    COMMITMENTS,
    COMPARISON,
    EXPLANATIONS,
    FORECAST,
    FRONTIER,
    OFFERS,
    PLACEMENTS,
    PLAN_SUMMARY,
    ROUTING,
    to_usd,
)
from scheduler.db.session import Database
from scheduler.services.forecast import GLOBAL, BudgetForecast, forecast_budgets
from scheduler.services.planning import planning_snapshot
from scheduler.services.scenarios import load_scenario, sample_scenario
from scheduler.services.studies import (
    DEFAULT_DROPS,
    IDLE,
    CommitmentStudy,
    FrontierPoint,
    VariantOutcome,
    commitment_study,
    cost_allocation,
    dominated,
    latency_points,
    redundancy_points,
    replica_changes,
    run_variants,
    spot_points,
    study_params,
    team_costs,
)
from scheduler.services.sweeps import ClusterUnavailableError, Runner, runner_for
from scheduler.settings import get_settings
from solver.baselines import greedy_per_model, lp_bound, single_cloud_on_demand
from solver.commitments.index import CommitmentParams
from solver.commitments.profile import (
    DemandProfile,
    ProfileError,
    WeeklyShape,
    parse_profile_csv,
    weekly_profile,
)
from solver.commitments.reserved import ReservedPriceAssumption, with_assumed_reserved
from solver.commitments.result import CommitmentResult
from solver.domain import Budget, PurchaseOption, Redundancy
from solver.problem import Problem, SolveParams
from solver.result import Explanation, SolveResult
from solver.solve import solve
from solver.units import HOURS_PER_MONTH, HOURS_PER_YEAR
from solver.whatif import (
    BudgetChange,
    Change,
    DemandGrowth,
    NewOffer,
    PriceShock,
    ProviderLost,
    RedundancyChange,
    RegionLost,
    ResidencyChange,
    Restrict,
    SloChange,
    SpotCapChange,
    WhatIf,
    WhatIfError,
    apply_changes,
)

__all__ = [
    "BudgetChange",
    "Change",
    "ClusterUnavailableError",
    "CommitmentParams",
    "CommitmentReport",
    "DemandGrowth",
    "DemandProfile",
    "NewOffer",
    "PlanResult",
    "Planner",
    "PriceShock",
    "ProfileError",
    "ProviderLost",
    "RedundancyChange",
    "RegionLost",
    "ReservedPriceAssumption",
    "ResidencyChange",
    "Restrict",
    "SloChange",
    "SpotCapChange",
    "WeeklyShape",
    "WhatIf",
    "WhatIfError",
    "compare",
    "load_profile",
    "plot_frontier",
    "to_usd",
]

VariantLike = WhatIf | Change | Sequence[Change]
"""A variant: a named WhatIf, one change, or a list of changes (named after what they change)."""

DEFAULT_SLO_FACTORS = (0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
DEFAULT_SPOT_CAPS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


# ----------------------------------------------------------------------------------------- results


def _status(result: SolveResult) -> str:
    return str(getattr(result.status, "value", result.status))


def _diagnosis(result: SolveResult) -> str:
    if result.plan is not None:
        return ""
    return "; ".join(str(e.text) for e in result.explanations) or _status(result)


class PlanResult:
    """A solved plan (or the solver's finding that there is none), readable as DataFrames.

    >>> base = Planner.sample().solve(time_limit_s=30)     # doctest: +SKIP
    >>> base.summary()[["status", "cost_micro_usd_per_hour", "gap"]]  # doctest: +SKIP
    """

    def __init__(
        self, name: str, problem: Problem, result: SolveResult, changes: Sequence[Change] = ()
    ) -> None:
        self.name = name
        self.problem = problem
        self.result = result
        self.changes = tuple(changes)

    def __repr__(self) -> str:
        cost = self.result.cost_micro_usd_per_hour
        shown = f"${cost / 1e6:,.2f}/h" if cost is not None else "no plan"
        return f"<PlanResult {self.name!r}: {_status(self.result)}, {shown}>"

    @property
    def status(self) -> str:
        return _status(self.result)

    @property
    def has_plan(self) -> bool:
        return self.result.plan is not None

    @property
    def cost_micro_usd_per_hour(self) -> int | None:
        return self.result.cost_micro_usd_per_hour

    def _summary_row(self) -> dict[str, Any]:
        result, plan = self.result, self.result.plan
        offers = {offer.key: offer for offer in self.problem.offers}
        instances = gpus = replicas = spot = 0
        for placement in plan.placements if plan is not None else ():
            offer = offers[placement.offer_key]
            instances += placement.instances
            gpus += placement.instances * offer.gpus_per_instance
            if offer.purchase_option is PurchaseOption.SPOT:
                spot += placement.instances * offer.gpus_per_instance
            replicas += sum(count.replicas for count in placement.replicas)
        has = plan is not None
        return {
            "name": self.name,
            "status": self.status,
            "cost_micro_usd_per_hour": result.cost_micro_usd_per_hour,
            "cost_micro_usd_per_month": result.cost_micro_usd_per_month,
            "lower_bound_micro_usd_per_hour": result.lower_bound_micro_usd_per_hour,
            "gap": result.gap,
            "churn_penalty_micro_usd_per_hour": result.churn_penalty_micro_usd_per_hour if has else None,
            "replicas": replicas if has else None,
            "instances": instances if has else None,
            "gpus": gpus if has else None,
            "spot_gpu_share": (spot / gpus if gpus else 0.0) if has else None,
            "wall_time_s": result.wall_time_s,
            "changes": "; ".join(change.describe() for change in self.changes),
            "diagnosis": _diagnosis(result),
        }

    def summary(self) -> pd.DataFrame:
        """One row: status, cost per hour and month, bound, gap, replicas, GPUs (schema ``PLAN_SUMMARY``).

        >>> plan.summary().loc[0, "cost_micro_usd_per_hour"]  # doctest: +SKIP
        """
        return PLAN_SUMMARY.frame([self._summary_row()])

    def placements(self) -> pd.DataFrame:
        """One row per (offer, model), idle GPUs included (schema ``PLACEMENTS``); costs add up to the plan's.

        >>> plan.placements().groupby("region")["gpus"].sum()  # doctest: +SKIP
        """
        plan = self.result.plan
        if plan is None:
            return PLACEMENTS.frame([])
        instances = {placement.offer_key: placement.instances for placement in plan.placements}
        rows = []
        for row in cost_allocation(self.problem, plan):
            rows.append(
                {
                    "offer_key": row.offer_key,
                    "provider": row.provider,
                    "region": row.region,
                    "gpu_type": row.gpu_type,
                    "purchase_option": row.purchase_option,
                    "instances": instances.get(row.offer_key, 0),
                    "model": row.model,
                    "team": row.team,
                    "replicas": row.replicas,
                    "gpus": row.gpus,
                    "cost_micro_usd_per_hour": row.cost_micro_usd_per_hour,
                    "committed": row.committed,
                }
            )
        return PLACEMENTS.frame(rows)

    def allocation(self, by: str | Sequence[str] = "team") -> pd.DataFrame:
        """The plan's cost grouped by team, model, region, provider, gpu_type or purchase_option (or a list
        of them), most expensive first (schema ``ALLOCATION``).

        >>> plan.allocation(by=["team", "purchase_option"])  # doctest: +SKIP
        """
        keys = [by] if isinstance(by, str) else list(by)
        allowed = ("team", "model", "region", "provider", "gpu_type", "purchase_option")
        unknown = [key for key in keys if key not in allowed]
        if unknown or not keys:
            raise ValueError(
                f"allocation: cannot group by {unknown or keys}; choose from {', '.join(allowed)}"
            )
        placements = self.placements()
        total = int(placements["cost_micro_usd_per_hour"].sum())
        grouped = (
            placements.groupby(keys, sort=True)[["gpus", "replicas", "cost_micro_usd_per_hour"]]
            .sum()
            .reset_index()
            .sort_values(["cost_micro_usd_per_hour", *keys], ascending=[False, *([True] * len(keys))])
        )
        rows = []
        for record in grouped.to_dict("records"):
            cost = int(record["cost_micro_usd_per_hour"])
            rows.append(
                {
                    **{key: record[key] for key in keys},
                    "gpus": int(record["gpus"]),
                    "replicas": int(record["replicas"]),
                    "cost_micro_usd_per_hour": cost,
                    "cost_micro_usd_per_month": cost * HOURS_PER_MONTH,
                    "share": cost / total if total else 0.0,
                }
            )
        frame = ALLOCATION.frame(rows, dynamic=keys)
        return frame[[*keys, *(column.name for column in ALLOCATION.columns)]]

    def routing(self) -> pd.DataFrame:
        """One row per route: model, source, region, share and tokens/s (schema ``ROUTING``)."""
        plan = self.result.plan
        demand = {(d.model, d.source): d.tokens_per_s for d in self.problem.demand}
        rows = [
            {
                "model": route.model,
                "source": route.source,
                "region": route.region,
                "share": route.share,
                "tokens_per_s": route.share * demand.get((route.model, route.source), 0),
            }
            for route in (plan.routes if plan is not None else ())
        ]
        return ROUTING.frame(rows)

    def explanations(self) -> pd.DataFrame:
        """The solver's findings: topic, text and the monthly cost attached (schema ``EXPLANATIONS``)."""
        return EXPLANATIONS.frame(_explanation_row(e) for e in self.result.explanations)


def _explanation_row(explanation: Explanation) -> dict[str, Any]:
    return {
        "topic": explanation.label,
        "text": explanation.text,
        "monthly_micro_usd": explanation.monthly_micro_usd,
    }


def compare(base: PlanResult, *variants: PlanResult) -> pd.DataFrame:
    """One row per plan, the base first: cost per hour and month, bound and gap, replicas moved and added,
    deltas against the base, in all and per team and model (schema ``COMPARISON``).

    A variant without a plan is a row with its status and diagnosis, not an exception.

    >>> compare(base, shocked, lost)  # doctest: +SKIP
    """
    plans = (base, *variants)
    teams = sorted({m.team for plan in plans for m in plan.problem.models} | {IDLE})
    models = sorted({m.name for plan in plans for m in plan.problem.models})

    def per_key(plan: PlanResult, key: str) -> dict[str, int]:
        if plan.result.plan is None:
            return {}
        totals: dict[str, int] = {}
        for row in cost_allocation(plan.problem, plan.result.plan):
            name = row.team if key == "team" else row.model
            totals[name] = totals.get(name, 0) + row.cost_micro_usd_per_hour
        return totals

    base_cost = base.result.cost_micro_usd_per_hour
    base_teams, base_models = per_key(base, "team"), per_key(base, "model")
    dynamic = [f"delta_team:{t}" for t in teams] + [f"delta_model:{m}" for m in models if m != IDLE]
    rows = []
    for plan in plans:
        row = plan._summary_row()
        cost = plan.result.cost_micro_usd_per_hour
        has = cost is not None and base_cost is not None
        moved, added = replica_changes(base.result.plan, plan.result.plan)
        delta = cost - base_cost if cost is not None and base_cost is not None else None
        row["delta_micro_usd_per_hour"] = delta
        row["delta_share"] = delta / base_cost if delta is not None and base_cost else None
        row["replicas_moved"] = moved if plan.result.plan is not None else None
        row["replicas_added"] = added if plan.result.plan is not None else None
        plan_teams, plan_models = per_key(plan, "team"), per_key(plan, "model")
        for team in teams:
            row[f"delta_team:{team}"] = plan_teams.get(team, 0) - base_teams.get(team, 0) if has else None
        for model in models:
            if model != IDLE:
                row[f"delta_model:{model}"] = (
                    plan_models.get(model, 0) - base_models.get(model, 0) if has else None
                )
        rows.append(row)
    return COMPARISON.frame(rows, dynamic=dynamic)


# --------------------------------------------------------------------------------------- commitments


class CommitmentReport:
    """A commitment study's answers as DataFrames: summary, commitments, hourly capacity, risk.

    >>> one_year = ReservedPriceAssumption(term="1y", discount=0.3)  # doctest: +SKIP
    >>> report = planner.commitments(assumptions=[one_year])  # doctest: +SKIP
    >>> report.commitments()[["offer_key", "instances", "utilisation"]]  # doctest: +SKIP
    """

    def __init__(self, study: CommitmentStudy, profile: DemandProfile, problem: Problem) -> None:
        self.study = study
        self.profile = profile
        self.problem = problem
        self._gpus = {offer.key: offer.gpus_per_instance for offer in problem.offers}

    @property
    def plan(self) -> CommitmentResult:
        return self.study.plan

    def summary(self) -> pd.DataFrame:
        """The plan and the all-on-demand reference (schema ``COMMITMENT_SUMMARY``)."""
        reference = self.study.on_demand.cost_micro_usd
        rows = []
        for name, result in (("plan", self.study.plan), ("all on demand", self.study.on_demand)):
            bound = result.lower_bound_micro_usd
            committed = sum(
                d.instances * d.price_micro_usd_per_hour * result.hours for d in result.commitments
            )
            rows.append(
                {
                    "name": name,
                    "status": result.status.value,
                    "cost_micro_usd_per_hour": result.cost_micro_usd_per_hour,
                    "cost_micro_usd_per_year": result.cost_micro_usd_per_year,
                    "lower_bound_micro_usd_per_hour": None if bound is None else bound // result.hours,
                    "gap": result.gap,
                    "savings_vs_on_demand": _saving(result.cost_micro_usd, reference),
                    "committed_micro_usd_per_hour": committed // result.hours
                    if result.cost_micro_usd
                    else None,
                    "wall_time_s": result.wall_time_s,
                    "diagnosis": "; ".join(result.diagnosis),
                }
            )
        return COMMITMENT_SUMMARY.frame(rows)

    def commitments(self) -> pd.DataFrame:
        """One row per commitment: instances, utilisation, break-even, saving (schema ``COMMITMENTS``)."""
        rows = []
        for d in self.study.plan.commitments:
            rows.append(
                {
                    "offer_key": d.offer_key,
                    "provider": d.provider,
                    "region": d.region,
                    "gpu_type": d.gpu_type.value,
                    "instance_type": d.instance_type,
                    "term": None if d.term is None else d.term.value,
                    "upfront": None if d.upfront is None else d.upfront.value,
                    "existing": d.existing,
                    "assumed": d.offer_key in self.study.assumed_offers,
                    "instances": d.instances,
                    "gpus": d.gpus,
                    "price_micro_usd_per_hour": d.price_micro_usd_per_hour,
                    "cost_micro_usd_per_year": d.cost_micro_usd_per_hour * HOURS_PER_YEAR,
                    "utilisation": d.utilisation,
                    "break_even_utilisation": d.break_even_utilisation,
                    "break_even_months": d.break_even_months,
                    "saving_micro_usd_per_year": d.saving_micro_usd_per_year,
                }
            )
        return COMMITMENTS.frame(rows)

    def hourly(self) -> pd.DataFrame:
        """Instances held or bought and GPUs used per hour and offer (schema ``COMMITMENT_HOURLY``)."""
        return COMMITMENT_HOURLY.frame(
            {
                "hour": row.hour,
                "start": self.profile.hour_start(row.hour),
                "offer_key": row.offer_key,
                "purchase_option": row.purchase_option.value,
                "committed": row.committed,
                "instances": row.instances,
                "gpus": row.instances * self._gpus[row.offer_key],
                "gpus_used": row.gpus_used,
                "cost_micro_usd": row.cost_micro_usd,
            }
            for row in self.study.plan.hourly
        )

    def risk(self) -> pd.DataFrame:
        """Per demand drop: cost with the commitments kept, replanned, all on demand (``COMMITMENT_RISK``)."""
        rows = []
        for risk in self.study.risks:
            kept, replanned, on_demand = risk.committed, risk.replanned, risk.on_demand
            held = sum(d.gpus * kept.hours for d in kept.commitments)
            used = sum(d.used_gpu_hours for d in kept.commitments)
            regret = None
            if kept.cost_micro_usd is not None and replanned.cost_micro_usd is not None:
                regret = (kept.cost_micro_usd - replanned.cost_micro_usd) * HOURS_PER_YEAR // kept.hours
            rows.append(
                {
                    "drop": risk.drop,
                    "status": kept.status.value,
                    "cost_micro_usd_per_hour": kept.cost_micro_usd_per_hour,
                    "replanned_micro_usd_per_hour": replanned.cost_micro_usd_per_hour,
                    "on_demand_micro_usd_per_hour": on_demand.cost_micro_usd_per_hour,
                    "savings_vs_on_demand": _saving(kept.cost_micro_usd, on_demand.cost_micro_usd),
                    "regret_micro_usd_per_year": regret,
                    "commitment_utilisation": used / held if held else None,
                }
            )
        return COMMITMENT_RISK.frame(rows)


def _saving(cost: int | None, reference: int | None) -> float | None:
    if cost is None or not reference:
        return None
    return 1.0 - cost / reference


def load_profile(path: str | Path) -> DemandProfile:
    """A demand profile from a CSV file: hour (UTC, ISO 8601), model, source, tokens_per_s, one row per hour
    of a week per (model, source). Gaps, negative values and timestamps not in UTC are a ``ProfileError``
    naming the line or the series.

    >>> profile = load_profile("demand_week.csv")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), [f"cannot read the profile: {exc.strerror or exc}"]) from exc
    return parse_profile_csv(text, source=str(path))


# ------------------------------------------------------------------------------------------ planner


def _variant(item: VariantLike, position: int) -> WhatIf:
    if isinstance(item, WhatIf):
        return item
    changes: tuple[Change, ...] = (item,) if not isinstance(item, Sequence) else tuple(item)
    name = "; ".join(change.describe() for change in changes) or f"variant {position}"
    return WhatIf(name=name, changes=changes)


class Planner:
    """A fleet to plan (a placement ``Problem``) with the studies planners run on it.

    >>> planner = Planner.sample()                                  # doctest: +SKIP
    >>> planner.offers().groupby("gpu_type")["price_micro_usd_per_gpu_hour"].median()  # doctest: +SKIP
    """

    def __init__(
        self,
        problem: Problem,
        *,
        params: SolveParams | None = None,
        name: str = "base",
        cluster: str | Client | Runner | None = None,
        workers: int | None = None,
        fallback: bool = False,
        progress: bool = True,
        deterministic: bool = True,
        assumed_offers: Iterable[str] = (),
    ) -> None:
        """``cluster``: None for a local process pool of ``workers`` (default: the cores), ``"serial"``
        for this process, a Dask scheduler address or a ``distributed.Client``. An address that cannot be
        reached is a ``ClusterUnavailableError`` (one line), or with ``fallback=True`` that line and the
        local pool. ``deterministic``: studies solve in the solver's deterministic mode (the same results
        on any runner; slower); False solves each variant within the time limit instead."""
        self.problem = problem
        self.params = params or SolveParams()
        self.name = name
        self.runner = runner_for(cluster, workers=workers, fallback=fallback)
        self.progress = progress
        self.deterministic = deterministic
        self.assumed_offers = frozenset(assumed_offers)

    def __repr__(self) -> str:
        return (
            f"<Planner {self.name!r}: {len(self.problem.models)} models, "
            f"{len(self.problem.sources)} sources, {len(self.problem.offers)} offers; "
            f"studies on {self.runner.name}>"
        )

    # ------------------------------------------------------------------------------- constructors

    @classmethod
    def sample(cls, **options: Any) -> Planner:
        """The sample fleet (six models, nine sources) on the shipped catalog.

        >>> planner = Planner.sample(cluster="serial")  # doctest: +SKIP
        """
        problem, params, _ = sample_scenario()
        return cls(problem, params=params, name="sample", **options)

    @classmethod
    def from_scenario(cls, path: str | Path, **options: Any) -> Planner:
        """A scenario file (docs/formats.md); a malformed one is a ``SpecError`` naming every bad field.

        >>> planner = Planner.from_scenario("docs/examples/tiny_scenario.yaml")  # doctest: +SKIP
        """
        if str(path) == "sample":
            return cls.sample(**options)
        problem, params, _ = load_scenario(path)
        return cls(problem, params=params, name=Path(path).stem, **options)

    @classmethod
    def from_database(
        cls, url: str | None = None, *, now: dt.datetime | None = None, **options: Any
    ) -> Planner:
        """The fleet, offers and policy in the database (``GPUPLAN_DATABASE_URL`` unless ``url``), read in
        one transaction that ends before anything is solved.

        >>> planner = Planner.from_database("postgresql+psycopg://planner@db:5432/gpuplan")  # doctest: +SKIP
        """
        settings = get_settings()
        database = Database.from_url(
            url or settings.resolved_database_url, connect_timeout_s=settings.db_connect_timeout_s
        )
        try:
            database.check_connection()
            with database.transaction() as session:
                return cls.from_session(session, now=now, **options)
        finally:
            database.dispose()

    @classmethod
    def from_session(cls, session: Session, *, now: dt.datetime | None = None, **options: Any) -> Planner:
        """The database's fleet through an open session (the caller owns the transaction)."""
        snapshot = planning_snapshot(session, now=now or dt.datetime.now(dt.UTC))
        return cls(snapshot.problem, name="database", **options)

    def _derived(self, problem: Problem, name: str) -> Planner:
        planner = Planner.__new__(Planner)
        planner.problem = problem
        planner.params = self.params
        planner.name = name
        planner.runner = self.runner
        planner.progress = self.progress
        planner.deterministic = self.deterministic
        planner.assumed_offers = self.assumed_offers
        return planner

    # ------------------------------------------------------------------------------------ offers

    def offers(self, *, plannable_only: bool = False) -> pd.DataFrame:
        """Every offer with its region's place, price per instance- and GPU-hour (schema ``OFFERS``).

        >>> planner.offers().query("purchase_option == 'spot'")  # doctest: +SKIP
        """
        regions = {region.key: region for region in self.problem.regions}
        rows = []
        for offer in self.problem.offers:
            if plannable_only and not offer.plannable:
                continue
            region = regions[offer.region_key]
            rows.append(
                {
                    "offer_key": offer.key,
                    "provider": offer.provider,
                    "region": offer.region_key,
                    "city": region.city,
                    "country": region.country,
                    "continent": region.continent.value,
                    "lat": region.lat,
                    "lon": region.lon,
                    "zone": offer.zone,
                    "instance_type": offer.instance_type,
                    "gpu_type": offer.gpu_type.value,
                    "gpus_per_instance": offer.gpus_per_instance,
                    "purchase_option": offer.purchase_option.value,
                    "term": None if offer.term is None else offer.term.value,
                    "upfront": None if offer.upfront is None else offer.upfront.value,
                    "price_micro_usd_per_hour": offer.price_micro_usd_per_hour,
                    "price_micro_usd_per_gpu_hour": offer.price_micro_usd_per_gpu_hour,
                    "availability": offer.availability,
                    "spot_risk": self.problem.risk_of(offer),
                    "plannable": offer.plannable,
                    "assumed": offer.key in self.assumed_offers,
                    "flags": ";".join(sorted(flag.value for flag in offer.flags)),
                }
            )
        return OFFERS.frame(rows)

    # -------------------------------------------------------------------------------- what if

    def what_if(self, *changes: Change, name: str | None = None) -> Planner:
        """A planner on the problem with the changes applied (this one is not changed).

        >>> eu = planner.what_if(Restrict(sources=("eu-central", "eu-west")), name="EU")  # doctest: +SKIP
        """
        problem = apply_changes(self.problem, changes)
        return self._derived(problem, name or "; ".join(change.describe() for change in changes))

    def with_reserved(self, *assumptions: ReservedPriceAssumption) -> Planner:
        """A planner whose offers include reserved terms priced at the assumed discounts off on-demand
        (where no reserved offer is known); those offers are marked ``assumed`` in every frame.

        >>> planner.with_reserved(ReservedPriceAssumption(term="1y", discount=0.3))  # doctest: +SKIP
        """
        problem, added = with_assumed_reserved(self.problem, assumptions)
        planner = self._derived(problem, self.name)
        planner.assumed_offers = self.assumed_offers | added
        return planner

    # ---------------------------------------------------------------------------------- solving

    def _params(
        self, time_limit_s: float | None, seed: int | None, deterministic: bool | None
    ) -> SolveParams:
        update: dict[str, Any] = {}
        if time_limit_s is not None:
            update["time_limit_s"] = time_limit_s
        if seed is not None:
            update["seed"] = seed
        if deterministic is not None:
            update["deterministic"] = deterministic
        return self.params.model_copy(update=update)

    def solve(
        self,
        *changes: Change,
        name: str | None = None,
        time_limit_s: float | None = None,
        seed: int | None = None,
        deterministic: bool | None = None,
    ) -> PlanResult:
        """Solve the problem (with the changes, if any) in this process.

        >>> plan = planner.solve(time_limit_s=30)  # doctest: +SKIP
        """
        problem = apply_changes(self.problem, changes)
        result = solve(problem, self._params(time_limit_s, seed, deterministic))
        label = name or ("; ".join(change.describe() for change in changes) if changes else self.name)
        return PlanResult(label, problem, result, changes)

    def study_params(self, *, time_limit_s: float | None = None, seed: int | None = None) -> SolveParams:
        """The parameters a study's solves use: deterministic (unless the planner says otherwise), one
        worker each, no explanations."""
        params = self._params(time_limit_s, seed, None).model_copy(update={"explain": False})
        return study_params(params).model_copy(update={"deterministic": self.deterministic})

    def sweep(
        self,
        variants: Iterable[VariantLike],
        *,
        time_limit_s: float | None = None,
        seed: int | None = None,
    ) -> list[PlanResult]:
        """Solve every variant on the planner's runner (local pool or Dask), in the solver's deterministic
        mode; results in the variants' order. A change naming something unknown fails before any solve.

        >>> plans = planner.sweep([PriceShock(factor=f) for f in (0.9, 1.1, 1.3)])  # doctest: +SKIP
        """
        whatifs = [_variant(item, i) for i, item in enumerate(variants)]
        outcomes = run_variants(
            self.problem,
            whatifs,
            self.study_params(time_limit_s=time_limit_s, seed=seed),
            self.runner,
            progress=self.progress,
        )
        return [_plan_of(outcome) for outcome in outcomes]

    def compare(
        self, *variants: VariantLike, time_limit_s: float | None = None, seed: int | None = None
    ) -> pd.DataFrame:
        """Solve the base and every variant (one study, same parameters) and compare them: one row per plan
        (schema ``COMPARISON``). An infeasible variant is a row with its diagnosis.

        >>> shock = PriceShock(factor=1.5, providers="aws")  # doctest: +SKIP
        >>> planner.compare(shock, RegionLost(regions="aws/us-east-1"))  # doctest: +SKIP
        """
        plans = self.sweep(
            [WhatIf(name=self.name, changes=()), *variants], time_limit_s=time_limit_s, seed=seed
        )
        return compare(plans[0], *plans[1:])

    # -------------------------------------------------------------------------------- frontiers

    def _frontier(
        self,
        points: list[FrontierPoint],
        *,
        x_better: str,
        axis: str,
        time_limit_s: float | None,
        seed: int | None,
    ) -> pd.DataFrame:
        outcomes = run_variants(
            self.problem,
            [point.variant for point in points],
            self.study_params(time_limit_s=time_limit_s, seed=seed),
            self.runner,
            progress=self.progress,
            label=f"{axis} frontier",
        )
        rows = []
        for point, outcome in zip(points, outcomes, strict=True):
            result = outcome.result
            plan_result = _plan_of(outcome)
            summary = plan_result._summary_row()
            slos = [m.latency_slo_ms for m in outcome.problem.models]
            rows.append(
                {
                    "point": point.label,
                    "x": point.x,
                    "status": _status(result),
                    "cost_micro_usd_per_hour": result.cost_micro_usd_per_hour,
                    "cost_micro_usd_per_month": result.cost_micro_usd_per_month,
                    "lower_bound_micro_usd_per_hour": result.lower_bound_micro_usd_per_hour,
                    "gap": result.gap,
                    "mean_slo_ms": sum(slos) / len(slos),
                    "spot_gpu_share": summary["spot_gpu_share"],
                    "diagnosis": _diagnosis(result),
                }
            )
        axis_values = [
            row["spot_gpu_share"] if axis == "spot" and row["spot_gpu_share"] is not None else row["x"]
            for row in rows
        ]
        marks = dominated(
            [(row["cost_micro_usd_per_hour"], x) for row, x in zip(rows, axis_values, strict=True)],
            x_better=x_better,
        )
        for row, mark in zip(rows, marks, strict=True):
            row["dominated"] = mark
        frame = FRONTIER.frame(rows)
        frame.attrs["axis"] = axis
        return frame

    def latency_frontier(
        self,
        factors: Iterable[float] = DEFAULT_SLO_FACTORS,
        *,
        models: Sequence[str] = (),
        time_limit_s: float | None = None,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Cost against the latency SLO: every (given) model's SLO times each factor; a tighter SLO (lower
        factor) is better, so a point is dominated when another is as cheap with an SLO as tight.

        >>> planner.latency_frontier((0.8, 1.0, 1.5))  # doctest: +SKIP
        """
        return self._frontier(
            latency_points(factors, models),
            x_better="lower",
            axis="latency",
            time_limit_s=time_limit_s,
            seed=seed,
        )

    def redundancy_frontier(
        self,
        levels: Sequence[tuple[Redundancy | str, float]] | None = None,
        *,
        models: Sequence[str] = (),
        time_limit_s: float | None = None,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Cost against redundancy: none, region 50% and 100%, provider 100% (or ``levels``, in increasing
        protection: each level's plans must keep the levels before); ``x`` is the rank, higher is better.

        >>> planner.redundancy_frontier()  # doctest: +SKIP
        """
        chosen = None if levels is None else [(Redundancy(level), share) for level, share in levels]
        points = redundancy_points(chosen, models) if chosen is not None else redundancy_points(models=models)
        return self._frontier(
            points, x_better="higher", axis="redundancy", time_limit_s=time_limit_s, seed=seed
        )

    def spot_frontier(
        self,
        caps: Iterable[float] = DEFAULT_SPOT_CAPS,
        *,
        models: Sequence[str] = (),
        time_limit_s: float | None = None,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Cost against spot: every (given) model's spot cap set to each value; dominance is judged on the
        spot share of the plan's GPUs (less spot, less interruption risk, is better).

        >>> planner.spot_frontier((0.0, 0.25, 0.5))  # doctest: +SKIP
        """
        return self._frontier(
            spot_points(caps, models), x_better="lower", axis="spot", time_limit_s=time_limit_s, seed=seed
        )

    # ------------------------------------------------------------------------------ commitments

    def weekly_profile(self, shape: WeeklyShape | None = None) -> DemandProfile:
        """A week of hourly demand per (model, source) from the problem's busy-hour demand, shaped by day
        (in each source's local time) and by weekday."""
        return weekly_profile(self.problem, shape)

    def commitments(
        self,
        profile: DemandProfile | None = None,
        *,
        assumptions: Sequence[ReservedPriceAssumption] = (),
        params: CommitmentParams | None = None,
        time_limit_s: float = 60.0,
        drops: Sequence[float] = DEFAULT_DROPS,
    ) -> CommitmentReport:
        """Plan reserved commitments for a week of hourly demand (a profile, or one generated from the
        problem's demand) and price the risk of demand falling by each of ``drops``.

        Reserved offers come from the problem (collectors, scenario offers); ``assumptions`` add terms at
        a discount off on-demand where none is known, marked ``assumed``. Each solve stops at
        ``time_limit_s`` (or as ``params`` say: ``CommitmentParams(deterministic=True)`` bounds the
        branch and bound by nodes instead, for results that do not depend on the machine).

        >>> three_years = ReservedPriceAssumption(term="3y", discount=0.5)  # doctest: +SKIP
        >>> report = planner.commitments(assumptions=[three_years])  # doctest: +SKIP
        >>> report.summary()  # doctest: +SKIP
        """
        problem, assumed = with_assumed_reserved(self.problem, assumptions)
        assumed = assumed | self.assumed_offers
        profile = profile or weekly_profile(problem)
        unknown = profile.check_against(problem)
        if unknown:
            raise ProfileError("demand profile", unknown)
        params = params or CommitmentParams(time_limit_s=time_limit_s)
        study = commitment_study(
            problem, profile, params, self.runner, drops=drops, assumed_offers=assumed, progress=self.progress
        )
        return CommitmentReport(study, profile, problem)

    # --------------------------------------------------------------------------------- forecast

    def forecast(
        self,
        plan: PlanResult,
        *,
        now: dt.datetime | None = None,
        monthly_growth: float = 0.0,
        spent_micro_usd: dict[str, int] | None = None,
        budgets: Sequence[Budget] | None = None,
    ) -> pd.DataFrame:
        """This month's spend against each budget from the plan's cost and a demand trend (``monthly_growth``:
        0.05 = +5% a month), with when each budget would run out (schema ``FORECAST``). ``spent_micro_usd``:
        spend so far this month, ``"(global)"`` and per team (default: the plan's cost for the hours past).

        >>> planner.forecast(plan, monthly_growth=0.08)  # doctest: +SKIP
        """
        if plan.result.plan is None or plan.result.cost_micro_usd_per_hour is None:
            raise ValueError(f"forecast: {plan.name!r} has no plan ({plan.status})")
        costs = {GLOBAL: plan.result.cost_micro_usd_per_hour}
        costs.update({team: cost for team, cost in team_costs(plan.problem, plan.result.plan).items()})
        chosen = tuple(budgets) if budgets is not None else plan.problem.policy.budgets
        for team in [m.team for m in plan.problem.models] + [b.team for b in chosen if b.team is not None]:
            costs.setdefault(team, 0)  # a team whose models the plan does not run spends nothing
        forecasts = forecast_budgets(
            costs,
            chosen,
            now=now or dt.datetime.now(dt.UTC),
            monthly_growth=monthly_growth,
            spent=spent_micro_usd,
        )
        return FORECAST.frame(_forecast_row(f) for f in forecasts)

    # -------------------------------------------------------------------------------- baselines

    def baselines(self, plan: PlanResult | None = None, *, time_limit_s: float = 30.0) -> pd.DataFrame:
        """The plan against the baselines (single-cloud on-demand, greedy per model, LP bound; schema
        ``BASELINES``); ``ratio_to_plan`` below 1 means the plan is cheaper.

        >>> planner.baselines(plan)  # doctest: +SKIP
        """
        problem = plan.problem if plan is not None else self.problem
        cost = plan.result.cost_micro_usd_per_hour if plan is not None else None
        found = (
            single_cloud_on_demand(problem),
            greedy_per_model(problem),
            lp_bound(problem, time_limit_s=time_limit_s),
        )
        rows = []
        for baseline in found:
            base_cost = baseline.cost_micro_usd_per_hour
            rows.append(
                {
                    "name": str(baseline.name),
                    "status": baseline.status.value,
                    "cost_micro_usd_per_hour": base_cost,
                    "lower_bound_micro_usd_per_hour": baseline.lower_bound_micro_usd_per_hour,
                    "ratio_to_plan": cost / base_cost if cost is not None and base_cost else None,
                    "violations": len(baseline.violations),
                    "wall_time_s": float(baseline.wall_time_s),
                    "note": baseline.note,
                }
            )
        return BASELINES.frame(rows)

    def close(self) -> None:
        """Close the Dask client the planner connected (a given client stays open)."""
        self.runner.close()


def _plan_of(outcome: VariantOutcome) -> PlanResult:
    return PlanResult(outcome.name, outcome.problem, outcome.result, outcome.changes)


def _forecast_row(forecast: BudgetForecast) -> dict[str, Any]:
    exceeds = forecast.run_rate_exceeds_on
    return {
        "scope": forecast.scope.value,
        "team": forecast.team,
        "limit_micro_usd_per_month": forecast.limit_micro_usd_per_month,
        "cost_micro_usd_per_hour": forecast.cost_micro_usd_per_hour,
        "spent_micro_usd": forecast.spent_micro_usd,
        "month_end_micro_usd": forecast.month_end_micro_usd,
        "headroom_micro_usd": forecast.headroom_micro_usd,
        "runs_out_at": forecast.runs_out_at,
        "run_rate_exceeds_on": None if exceeds is None else dt.datetime.combine(exceeds, dt.time(), dt.UTC),
    }


# ------------------------------------------------------------------------------------------ plots


def plot_frontier(frame: pd.DataFrame, *, ax: Any = None, title: str | None = None) -> Any:
    """A frontier DataFrame as a plot: cost per hour (USD) against the axis, the frontier as a line, the
    dominated points hollow, points without a plan as crosses on the axis. Returns the matplotlib Axes.

    >>> plot_frontier(planner.spot_frontier())  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib loads only when a plot is asked for

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    axis = frame.attrs.get("axis", "")
    x = frame["spot_gpu_share"] if axis == "spot" else frame["x"]
    cost = to_usd(frame["cost_micro_usd_per_hour"])
    on = frame["dominated"].eq(False).fillna(False).astype(bool)
    off = frame["dominated"].eq(True).fillna(False).astype(bool)
    none = frame["dominated"].isna()
    order = x[on].astype(float).sort_values().index
    ax.plot(x[order].astype(float), cost[order].astype(float), "o-", label="frontier")
    if off.any():
        ax.plot(x[off].astype(float), cost[off].astype(float), "o", mfc="none", label="dominated")
    if none.any():
        bottom = float(cost.min()) if cost.notna().any() else 0.0
        ax.plot(frame["x"][none].astype(float), [bottom] * int(none.sum()), "x", color="red", label="no plan")
    for xi, ci, label in zip(x, cost, frame["point"], strict=True):
        if pd.notna(ci):
            ax.annotate(
                str(label), (float(xi), float(ci)), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
    labels = {
        "latency": "latency SLO (x the model's)",
        "redundancy": "protection (rank of the levels, none first)",
        "spot": "spot share of GPUs",
    }
    ax.set_xlabel(labels.get(axis, "x"))
    ax.set_ylabel("cost (USD per hour)")
    ax.set_title(title or f"Cost against {axis or 'the axis'}")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
