"""``gpuplan quickstart``: the README's first command, the whole loop on the simulated cloud. It migrates
the database (creating the embedded SQLite file), loads the shipped catalog and the sample fleet,
summarises them and plans the fleet; then the plan goes to the auto-apply policy and is applied to the
simulated cloud, a share of the spot instances is preempted, reconciliation finds them and the models they
served are re-planned (the rest of the fleet held) and applied, and a last reconciliation checks that the
cloud and the fleet agree. It ends with the fleet and its cost."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from api.cli.app import Runtime, open_database, runtime, settings
from api.cli.catalog import load_catalog
from api.cli.fleet import load_fleet, show_fleet
from api.cli.planning import plan_from_database, time_limit_option
from api.cli.plans import show_run, status_line
from api.cli.render.cloud import instances_table, reconcile_lines
from api.cli.render.plans import actions_table, fleet_cost_line, fleet_instances_table
from api.cli.render.prices import offer_summary_table
from pricing.catalog import load_catalog as read_catalog
from scheduler.db import migrate
from scheduler.db.models import PlanStatus
from scheduler.db.session import Database
from scheduler.services import catalog as catalog_service
from scheduler.services import fleet as fleet_service
from scheduler.services.apply import apply_plan
from scheduler.services.engine import build_engine
from scheduler.services.fleetstate import fleet_view
from scheduler.services.loop import follow_up, reconcile_and_replan
from scheduler.services.plans import submit
from scheduler.services.solving import Baselines
from scheduler.settings import ProvisionerMode
from solver.problem import SolveParams

QUICKSTART_TIME_LIMIT_S = 30.0
"""Solve time of the plan of the sample fleet: on two cores, within about 1% of its proven bound
(README, 'The two commands')."""
PREEMPT_SHARE = 0.25
"""Share of the running spot instances the simulated cloud takes back in the demo."""
ACTOR = "gpuplan quickstart"


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)


def quickstart(
    ctx: typer.Context,
    time_limit: Annotated[
        float, time_limit_option("Seconds for the plan of the sample fleet.")
    ] = QUICKSTART_TIME_LIMIT_S,
    preempt_share: Annotated[
        float,
        typer.Option("--preempt-share", min=0.01, max=1.0, help="Share of the spot instances to preempt."),
    ] = PREEMPT_SHARE,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Which spot instances are preempted.")] = 7,
) -> None:
    """Set up, load the catalog and the sample fleet, plan, apply to the simulated cloud, preempt some spot
    instances, re-plan and apply, reconcile; ends with the fleet and its cost."""
    rt = runtime(ctx)
    catalog = read_catalog(None)
    fleet = fleet_service.sample_fleet()
    with open_database(create=True, check_revision=False) as database:
        migrate.upgrade(database.engine)
        rt.say(f"database {database.url} migrated to {migrate.current_revision(database.engine)}")
        load_catalog(rt, database, catalog, None)
        load_fleet(rt, database, fleet, "the sample fleet")
        with database.transaction() as session:
            views = catalog_service.list_offers(session)
            stored = fleet_service.read_fleet(session)
        rt.show(offer_summary_table(views))
        show_fleet(rt, stored)
        params = SolveParams(time_limit_s=time_limit)
        plan_id = plan_from_database(rt, database, params, out=None, baselines=Baselines.FAST)
        if plan_id is not None:
            run_loop(rt, database, plan_id, preempt_share=preempt_share, seed=seed)


def _step(rt: Runtime, text: str) -> None:
    rt.show(Text.assemble("\n", ("== ", "bold"), (text, "bold")))


def run_loop(rt: Runtime, database: Database, plan_id: int, *, preempt_share: float, seed: int) -> None:
    """The loop on the simulated cloud, step by step (the demo always applies to the simulated cloud)."""
    config = settings().model_copy(update={"provisioner": ProvisionerMode.SIMULATED})
    engine = build_engine(database, config)
    cloud = engine.simulated()
    ctx = engine.context(clock=rt.now)
    replan = SolveParams(time_limit_s=config.replan_time_limit_s)

    _step(rt, f"1. the auto-apply policy decides on plan {plan_id}")
    with database.transaction() as session:
        row = submit(session, plan_id, now=rt.now(), settings=config, actor=ACTOR)
        status, reason = row.status, row.status_reason
    rt.show(status_line(plan_id, status, "auto-apply policy"))
    rt.say(f"  {reason}")
    if status is not PlanStatus.APPROVED:
        rt.say(
            "it waits for approval by someone other than its author: "
            f"`gpuplan plans approve {plan_id} --actor NAME`"
        )
        return

    _step(rt, f"2. apply plan {plan_id} to the simulated cloud (launch, then routing, then terminate)")
    report = apply_plan(ctx, plan_id, actor=ACTOR)
    rt.show(actions_table(plan_id, report.outcomes))
    rt.show(
        status_line(plan_id, report.status, ACTOR)
        + f" ({report.succeeded} of {len(report.outcomes)} actions in {report.seconds:.1f} s)"
    )
    for run in follow_up(ctx, report, actor=ACTOR, params=replan, depth=config.replan_depth):
        show_run(rt, run)
    with database.transaction() as session:
        rt.show(fleet_cost_line(fleet_view(session)))

    _step(rt, f"3. the simulated cloud preempts {preempt_share:.0%} of the spot instances (seed {seed})")
    taken = cloud.preempt_random(share=preempt_share, seed=seed)
    rt.show(instances_table(taken, title=f"{len(taken)} spot instances preempted"))

    _step(rt, "4. reconcile, re-plan the models that lost replicas (the rest held) and apply")
    result = reconcile_and_replan(ctx, replan, actor=ACTOR)
    rt.show(*reconcile_lines(result.report))
    if result.replan is not None:
        show_run(rt, result.replan)

    _step(rt, "5. reconcile again: the cloud and the fleet agree")
    again = reconcile_and_replan(ctx, replan, actor=ACTOR, replan=False)
    rt.show(*reconcile_lines(again.report))

    _step(rt, "the fleet")
    with database.transaction() as session:
        view = fleet_view(session)
    rt.show(fleet_instances_table(view), fleet_cost_line(view))
