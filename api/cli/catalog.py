"""``gpuplan catalog``: the shipped price catalog (or a corrected copy) into the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.app import Runtime, open_database, runtime, sub_app
from pricing.catalog import Catalog
from pricing.catalog import load_catalog as read_catalog
from scheduler.db.session import Database
from scheduler.services import catalog as catalog_service

group = sub_app("The price catalog.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="catalog")


@group.command("load")
def catalog_load(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="A catalog directory with the shipped file layout (default: the shipped one)."
        ),
    ] = None,
) -> None:
    """Load the price catalog into the database as one collection run (loading twice adds nothing)."""
    catalog = read_catalog(directory)
    with open_database() as database:
        load_catalog(runtime(ctx), database, catalog, directory)


def load_catalog(rt: Runtime, database: Database, catalog: Catalog, directory: Path | None) -> None:
    """Store a catalog read from ``directory`` (None: the shipped one) in one transaction and say so."""
    source = catalog_service.SHIPPED_CATALOG_SOURCE if directory is None else f"catalog:{directory.resolve()}"
    with database.transaction() as session:
        result = catalog_service.load_catalog(session, catalog, now=rt.now(), source=source)
    rt.say(
        f"catalog loaded (run {result.run_id}): {result.offers_seen} offers seen, "
        f"{result.offers_added} new, {result.observations_added} new price observations"
    )
