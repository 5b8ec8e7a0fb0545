"""``gpuplan quickstart``: the README's first command. Migrates the database (creating the embedded
SQLite file), loads the shipped catalog and the sample fleet, summarises them and plans the fleet."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.app import open_database, runtime
from api.cli.catalog import load_catalog
from api.cli.fleet import load_fleet, show_fleet
from api.cli.planning import plan_from_database, time_limit_option
from api.cli.render.prices import offer_summary_table
from pricing.catalog import load_catalog as read_catalog
from scheduler.db import migrate
from scheduler.services import catalog as catalog_service
from scheduler.services import fleet as fleet_service
from scheduler.services.solving import Baselines
from solver.problem import SolveParams

QUICKSTART_TIME_LIMIT_S = 30.0
"""Solve time of the plan that ends ``gpuplan quickstart``: on two cores, a plan of the sample fleet
within about 1% of its proven bound (README, 'The two commands')."""


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)


def quickstart(
    ctx: typer.Context,
    time_limit: Annotated[
        float, time_limit_option("Seconds for the plan of the sample fleet.")
    ] = QUICKSTART_TIME_LIMIT_S,
) -> None:
    """Migrate the database, load the catalog and the sample fleet, summarise them and plan the fleet."""
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
        plan_from_database(rt, database, params, out=None, baselines=Baselines.FAST)
