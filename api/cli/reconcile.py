"""``gpuplan reconcile``: every adapter's inventory, read by tag, against the fleet; lost instances are
marked and their models re-planned (the rest of the fleet held) and applied when the auto-apply policy
approves; strays are reported, adopted or terminated by GPUPLAN_STRAY_POLICY."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.app import open_database, runtime, settings
from api.cli.plans import show_run
from api.cli.render.cloud import reconcile_lines
from api.cli.render.plans import fleet_cost_line
from scheduler.services.engine import build_engine
from scheduler.services.fleetstate import fleet_view
from scheduler.services.loop import reconcile_and_replan
from solver.problem import SolveParams


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile)


def reconcile(
    ctx: typer.Context,
    replan: Annotated[
        bool, typer.Option("--replan/--no-replan", help="Re-plan the models that lost replicas.")
    ] = True,
) -> None:
    """Reconcile the clouds' inventories with the fleet and re-plan what was lost."""
    rt = runtime(ctx)
    config = settings()
    with open_database() as database:
        engine = build_engine(database, config)
        ctx_apply = engine.context(clock=rt.now)
        params = SolveParams(time_limit_s=config.replan_time_limit_s)
        run = reconcile_and_replan(ctx_apply, params, actor="gpuplan reconcile", replan=replan)
        rt.show(*reconcile_lines(run.report))
        if run.replan is not None:
            show_run(rt, run.replan)
        with database.transaction() as session:
            rt.show(fleet_cost_line(fleet_view(session)))
