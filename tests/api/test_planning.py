"""The planners' Python API: documented frames and dtypes, compare, frontiers, commitments, forecast,
the database path (SQLite and PostgreSQL), and the docs generated from the schemas."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from api import frames
from api.planning import (
    DemandGrowth,
    Planner,
    PriceShock,
    RegionLost,
    ReservedPriceAssumption,
    Restrict,
    SloChange,
    WhatIfError,
    compare,
    plot_frontier,
    to_usd,
)
from pricing.catalog import load_catalog
from scheduler.services.catalog import load_catalog as load_catalog_into_db
from scheduler.services.fleet import load_fleet, read_fleet_file
from solver.commitments.index import CommitmentParams
from solver.domain import Budget, BudgetScope, PurchaseOption, ReservedTerm
from tests.planning_problems import FRA, offer, tiny_problem

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def planner() -> Planner:
    return Planner(tiny_problem(), cluster="serial", progress=False)


def assert_schema(frame: pd.DataFrame, schema: frames.Schema, dynamic: list[str] | None = None) -> None:
    expected = [c.name for c in schema.columns]
    assert list(frame.columns)[: len(expected)] == expected
    for column in schema.columns:
        assert str(frame[column.name].dtype) == column.dtype, column.name
    extra = list(frame.columns)[len(expected) :]
    if dynamic is not None:
        assert extra == dynamic
    assert schema.dynamic is not None or not extra
    for name in extra:
        assert schema.dynamic is not None
        assert str(frame[name].dtype) == schema.dynamic.dtype


def test_frames_of_a_plan_have_their_documented_columns_and_dtypes() -> None:
    tool = planner()
    plan = tool.solve(time_limit_s=5, deterministic=True)
    assert plan.status == "optimal"
    assert_schema(tool.offers(), frames.OFFERS)
    assert_schema(plan.summary(), frames.PLAN_SUMMARY)
    placements = plan.placements()
    assert_schema(placements, frames.PLACEMENTS)
    assert_schema(plan.routing(), frames.ROUTING)
    assert_schema(plan.explanations(), frames.EXPLANATIONS)
    # The placements' costs add up to the plan's cost exactly, and so does every allocation.
    cost = plan.result.cost_micro_usd_per_hour
    assert cost is not None
    assert placements["cost_micro_usd_per_hour"].sum() == cost
    for by in ("team", "model", "region", "provider", "gpu_type", "purchase_option", ["team", "region"]):
        allocation = plan.allocation(by=by)
        keys = [by] if isinstance(by, str) else by
        assert list(allocation.columns[: len(keys)]) == keys
        assert all(str(allocation[k].dtype) == "string" for k in keys)
        assert list(allocation.columns[len(keys) :]) == [c.name for c in frames.ALLOCATION.columns]
        assert allocation["cost_micro_usd_per_hour"].sum() == cost
        assert allocation["share"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cannot group by"):
        plan.allocation(by="colour")
    routing = plan.routing()
    assert routing.groupby(["model", "source"])["share"].sum().round(6).eq(1.0).all()
    assert to_usd(placements["cost_micro_usd_per_hour"]).sum() == pytest.approx(cost / 1e6)


def test_compare_rows_deltas_and_an_infeasible_variant_as_a_row() -> None:
    tool = planner()
    table = tool.compare(
        PriceShock(factor=1.5, providers="acme"),
        [RegionLost(regions="acme/iad"), DemandGrowth(factor=2.0)],
        SloChange(factor=0.5),
        time_limit_s=5,
    )
    dynamic = [
        "delta_team:(idle)",
        "delta_team:chat",
        "delta_team:research",
        "delta_model:big",
        "delta_model:chat",
    ]
    assert_schema(table, frames.COMPARISON, dynamic)
    assert list(table["name"]) == [
        "base",
        "prices x1.5 provider acme",
        "region lost: acme/iad; demand x2",
        "SLO x0.5",
    ]
    base, shocked, lost, slo = (table.iloc[i] for i in range(4))
    assert base["delta_micro_usd_per_hour"] == 0 and base["replicas_moved"] == 0
    # Every instance of the base runs at acme/iad on demand ($2/h): 50% dearer there, nothing cheaper
    # elsewhere ($3 at beta) for the whole plan: +$3/h.
    assert (
        shocked["delta_micro_usd_per_hour"]
        == shocked["cost_micro_usd_per_hour"] - base["cost_micro_usd_per_hour"]
    )
    assert (
        shocked["delta_team:chat"] + shocked["delta_team:research"] + shocked["delta_team:(idle)"]
        == (shocked["delta_micro_usd_per_hour"])
    )
    assert lost["replicas_moved"] == base["replicas"]  # nothing stays where it was
    assert slo["status"] == "infeasible"
    assert pd.isna(slo["cost_micro_usd_per_hour"]) and pd.isna(slo["delta_micro_usd_per_hour"])
    assert "chat from eu cannot be served" in slo["diagnosis"]
    with pytest.raises(WhatIfError, match="unknown region 'acme/mars'"):
        tool.compare(RegionLost(regions="acme/mars"))
    # The module-level compare of plans solved elsewhere gives the same rows.
    again = compare(
        tool.solve(time_limit_s=5, deterministic=True), tool.solve(PriceShock(factor=1.5, providers="acme"))
    )
    assert list(again["cost_micro_usd_per_hour"]) == list(table["cost_micro_usd_per_hour"][:2])


def test_latency_frontier_is_monotone_and_marks_dominated_points() -> None:
    tool = planner()
    frontier = tool.latency_frontier((0.5, 0.55, 0.75, 1.0, 1.5), models=["chat"], time_limit_s=5)
    assert_schema(frontier, frames.FRONTIER)
    assert list(frontier["x"]) == [0.5, 0.55, 0.75, 1.0, 1.5]
    assert frontier.loc[0, "status"] == "infeasible" and pd.isna(frontier.loc[0, "dominated"])
    costs = list(frontier["cost_micro_usd_per_hour"][1:])
    # A looser SLO never costs more (every plan of a tighter SLO keeps the looser one), solved to optimality.
    assert all(later <= earlier for earlier, later in itertools.pairwise(costs))
    assert costs[0] > costs[-1]  # Frankfurt/Amsterdam only at 110 ms; Ashburn's $2 from 190 ms
    # Non-dominated points: strictly cheaper as the SLO loosens.
    on = frontier[frontier["dominated"].eq(False)]
    assert on["cost_micro_usd_per_hour"].is_monotonic_decreasing
    assert on["cost_micro_usd_per_hour"].is_unique
    # x1.5 costs what x1.0 costs, with a looser SLO: dominated.
    assert bool(frontier.loc[4, "dominated"]) is True
    ax = plot_frontier(frontier)
    assert ax.get_xlabel().startswith("latency SLO")


def test_spot_and_redundancy_frontiers() -> None:
    tool = planner()
    spot = tool.spot_frontier((0.0, 0.5, 1.0), time_limit_s=5)
    assert_schema(spot, frames.FRONTIER)
    costs = list(spot["cost_micro_usd_per_hour"])
    assert costs == sorted(costs, reverse=True)  # a looser cap never costs more
    assert spot.loc[0, "spot_gpu_share"] == 0.0
    redundancy = tool.redundancy_frontier(time_limit_s=5)
    assert list(redundancy["point"]) == ["none", "region 50%", "region 100%", "provider 100%"]
    feasible = redundancy.dropna(subset=["cost_micro_usd_per_hour"])
    # More protection never costs less (each level's plans keep the level before).
    assert list(feasible["cost_micro_usd_per_hour"]) == sorted(feasible["cost_micro_usd_per_hour"])


def test_commitment_report_frames() -> None:
    base = tiny_problem()
    tool = Planner(
        base.model_copy(
            update={
                "offers": (
                    *base.offers,
                    offer(FRA, PurchaseOption.RESERVED, "2.50", term=ReservedTerm.THREE_YEARS),
                )
            }
        ),
        cluster="serial",
        progress=False,
    )
    report = tool.commitments(
        assumptions=[ReservedPriceAssumption(term="1y", discount=0.3, providers="beta")],
        params=CommitmentParams(time_limit_s=2, relative_gap=0.01),
        drops=(0.2,),
    )
    summary = report.summary()
    assert_schema(summary, frames.COMMITMENT_SUMMARY)
    assert list(summary["name"]) == ["plan", "all on demand"]
    plan_cost, on_demand_cost = summary["cost_micro_usd_per_hour"]
    assert summary.loc[0, "savings_vs_on_demand"] == pytest.approx(1 - plan_cost / on_demand_cost)
    # Every solve's bound is below its cost; spot and commitments can only make the week cheaper than
    # all on demand, so the plan's bound is below the on-demand plan's cost.
    assert (summary["lower_bound_micro_usd_per_hour"] <= summary["cost_micro_usd_per_hour"]).all()
    assert summary.loc[0, "lower_bound_micro_usd_per_hour"] <= on_demand_cost
    commitments = report.commitments()
    assert_schema(commitments, frames.COMMITMENTS)
    assert (commitments["assumed"] == commitments["offer_key"].str.startswith("beta/")).all()
    assert commitments["utilisation"].between(0, 1).all()
    hourly = report.hourly()
    assert_schema(hourly, frames.COMMITMENT_HOURLY)
    assert hourly["hour"].between(0, 167).all()
    assert hourly["start"].min() == pd.Timestamp("2026-11-16T00:00Z")
    # The hourly rows add up to the plan's cost over the week.
    assert hourly["cost_micro_usd"].sum() == report.plan.cost_micro_usd
    risk = report.risk()
    assert_schema(risk, frames.COMMITMENT_RISK)
    assert list(risk["drop"]) == [0.2]
    kept = report.study.risks[0].committed
    assert {d.offer_key for d in kept.commitments} == set(commitments["offer_key"])


def test_forecast_against_budgets() -> None:
    tool = planner()
    plan = tool.solve(time_limit_s=5, deterministic=True)
    cost = plan.result.cost_micro_usd_per_hour
    assert cost is not None
    # 30-day November; at 12:00 on the 22nd, 516 h have passed and 204 are left.
    flat = tool.forecast(plan, now=NOW)
    assert_schema(flat, frames.FORECAST)
    glob = flat[flat["scope"] == "global"].iloc[0]
    assert glob["spent_micro_usd"] == cost * 516
    assert glob["month_end_micro_usd"] == cost * 720
    assert pd.isna(glob["runs_out_at"]) and pd.isna(glob["run_rate_exceeds_on"])
    # A budget of 600 hours of the plan runs out 84 h from now; growing 10% a month, the run rate passes
    # a limit of 800 hours of today's cost after 730 x ln(800/730) / ln(1.1) = 702.6 h.
    tight = Budget(scope=BudgetScope.GLOBAL, limit_micro_usd_per_month=cost * 600)
    loose = Budget(scope=BudgetScope.GLOBAL, limit_micro_usd_per_month=cost * 800)
    growing = tool.forecast(plan, now=NOW, budgets=[tight], monthly_growth=0.0)
    assert growing.loc[0, "runs_out_at"] == pd.Timestamp(NOW + dt.timedelta(hours=84))
    assert growing.loc[0, "headroom_micro_usd"] == -cost * 120
    later = tool.forecast(plan, now=NOW, budgets=[loose], monthly_growth=0.10)
    assert later.loc[0, "run_rate_exceeds_on"] == pd.Timestamp(
        (NOW + dt.timedelta(hours=702.6)).date(), tz="UTC"
    )
    team = tool.forecast(plan, now=NOW)
    assert set(team["team"].dropna()) == {"chat"}
    with pytest.raises(ValueError, match="has no time zone"):
        tool.forecast(plan, now=dt.datetime(2026, 11, 22))  # noqa: DTZ001 - the naive time under test


FLEET = """
models:
  - name: chat-8b
    team: chat
    latency_slo_ms: 400
    profiles:
      - {gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 14180, service_latency_ms: 50}
sources:
  - {name: eu-central, lat: 50.11, lon: 8.68, country: DE, residency: [EU], anchor_region: aws/eu-central-1}
demand:
  - {model: chat-8b, source: eu-central, tokens_per_s: 30000}
policy:
  name: default
  budgets: [{scope: global, limit_usd_per_month: 100000}]
"""


def test_planner_from_the_database(session: Session) -> None:
    load_catalog_into_db(session, load_catalog(), now=NOW)
    load_fleet(session, read_fleet_file(FLEET, source="fleet.yaml"), now=NOW, actor="test")
    tool = Planner.from_session(session, now=NOW, cluster="serial", progress=False)
    assert [m.name for m in tool.problem.models] == ["chat-8b"]
    offers = tool.offers()
    assert_schema(offers, frames.OFFERS)
    assert offers["plannable"].all()  # the snapshot leaves out what the planner ignores
    plan = tool.what_if(Restrict(providers=("aws", "nebius"))).solve(time_limit_s=3)
    assert plan.has_plan
    assert set(plan.placements()["provider"]) <= {"aws", "nebius"}


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot reach the database") as info:
        Planner.from_database("postgresql+psycopg://nobody@127.0.0.1:1/none", cluster="serial")
    assert "\n" not in str(info.value)


def test_docs_list_every_frame_column() -> None:
    text = (ROOT / "docs" / "planners.md").read_text(encoding="utf-8")
    for schema in frames.SCHEMAS:
        assert frames.schema_markdown(schema) in text, schema.name


def test_baselines_frame() -> None:
    tool = planner()
    plan = tool.solve(time_limit_s=5, deterministic=True)
    table = tool.baselines(plan, time_limit_s=5)
    assert_schema(table, frames.BASELINES)
    assert len(table) == 3
    bound = table[table["status"] == "bound"].iloc[0]
    # The LP relaxation is a lower bound on every plan, the optimal one included.
    assert bound["lower_bound_micro_usd_per_hour"] <= plan.result.cost_micro_usd_per_hour
    priced = table.dropna(subset=["cost_micro_usd_per_hour"])
    assert (
        priced["ratio_to_plan"] == plan.result.cost_micro_usd_per_hour / priced["cost_micro_usd_per_hour"]
    ).all()
