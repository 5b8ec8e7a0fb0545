"""``gpuplan db``: migrations. The only commands that work on a database at another revision than this
gpuplan's latest, and ``db upgrade`` the only one (with ``quickstart``) that may create a SQLite file."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.app import open_database, runtime, sub_app
from scheduler.db import migrate

group = sub_app("Database migrations.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="db")


@group.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to REVISION (default: the latest); creates an embedded SQLite file."""
    with open_database(create=True, check_revision=False) as database:
        migrate.upgrade(database.engine, revision)
        runtime(ctx).say(f"database {database.url} at revision {migrate.current_revision(database.engine)}")


@group.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops everything.")],
) -> None:
    """Migrate the database down to REVISION."""
    with open_database(check_revision=False) as database:
        migrate.downgrade(database.engine, revision)
        current = migrate.current_revision(database.engine) or "base"
        runtime(ctx).say(f"database {database.url} at revision {current}")


@group.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the database's revision and the latest one."""
    with open_database(check_revision=False) as database:
        current = migrate.current_revision(database.engine) or "base (empty)"
        runtime(ctx).say(f"database {database.url}: revision {current}; latest {migrate.head_revision()}")
