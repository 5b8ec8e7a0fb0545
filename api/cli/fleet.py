"""``gpuplan fleet``: models, demand, budgets and the policy, into the database and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.app import Runtime, open_database, runtime, sub_app
from api.cli.render.fleet import budget_lines, fleet_table
from scheduler.db.session import Database
from scheduler.services import fleet as fleet_service
from solver.fleetspec import FleetSpec

group = sub_app("Models, demand and policies.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="fleet")


@group.command("load-sample")
def fleet_load_sample(ctx: typer.Context) -> None:
    """Load the sample fleet (six models, nine demand sources, budgets) into the database."""
    fleet = fleet_service.sample_fleet()
    with open_database() as database:
        load_fleet(runtime(ctx), database, fleet, "the sample fleet")


@group.command("load")
def fleet_load(
    ctx: typer.Context, path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]
) -> None:
    """Load a fleet document (YAML or JSON; docs/formats.md) into the database."""
    fleet = fleet_service.read_fleet_path(path)
    with open_database() as database:
        load_fleet(runtime(ctx), database, fleet, str(path))


def load_fleet(rt: Runtime, database: Database, fleet: FleetSpec, label: str) -> None:
    """Store a fleet document in one transaction and say what was loaded."""
    with database.transaction() as session:
        result = fleet_service.load_fleet(session, fleet, now=rt.now(), actor="gpuplan fleet load")
    rt.say(
        f"loaded {label}: {result.models} models ({result.profiles} GPU profiles), {result.sources} demand "
        f"sources, {result.demands} demands, {result.budgets} budgets, policy {result.policy!r} active"
    )


@group.command("show")
def fleet_show(ctx: typer.Context) -> None:
    """Show the models, their demand and the active policy."""
    with open_database() as database, database.transaction() as session:
        fleet = fleet_service.read_fleet(session)
    show_fleet(runtime(ctx), fleet)


def show_fleet(rt: Runtime, fleet: fleet_service.Fleet) -> None:
    rt.show(fleet_table(fleet))
    for line in budget_lines(fleet):
        rt.say(line)
