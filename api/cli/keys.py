"""``gpuplan keys``: API keys of the REST API. ``keys create --role admin`` makes the first admin key (the
API's own key management needs one); the secret is printed once and stored only as a hash."""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Annotated

import typer

from api.cli.app import open_database, runtime, sub_app
from api.cli.render import add_row, table
from scheduler.db.models import ApiRole
from scheduler.services import apikeys

group = sub_app("API keys of the REST API (`gpuplan serve`).")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="keys")


def _actor(command: str) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "unknown"
    return f"{user} (gpuplan keys {command})"


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


@group.command("create")
def keys_create(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option("--owner", help="Who the key is for (a person or a system).")],
    role: Annotated[ApiRole, typer.Option("--role", help="viewer, approver or admin.")] = ApiRole.VIEWER,
) -> None:
    """Create an API key and print it; it is shown this once (only its hash is stored)."""
    rt = runtime(ctx)
    with open_database() as database, database.transaction() as session:
        new = apikeys.create_key(session, owner=owner, role=role, actor=_actor("create"), now=rt.now())
        prefix = new.row.prefix
    rt.say(new.key)
    rt.err.print(
        f"created {role.value} key {prefix} for {owner.strip()}; "
        "the line above is its secret, shown only this once",
        markup=False,
        highlight=False,
    )


@group.command("list")
def keys_list(
    ctx: typer.Context,
    include_revoked: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False,
) -> None:
    """List API keys: prefix, owner, role, when made and last used (never a secret)."""
    rt = runtime(ctx)
    with open_database() as database, database.transaction() as session:
        rows = apikeys.list_keys(session, include_revoked=include_revoked)
        result = table(
            f"{len(rows)} API keys",
            ["prefix", "owner", "role", "created", "created by", "last used", "revoked"],
        )
        for row in rows:
            add_row(
                result,
                row.prefix,
                row.owner,
                row.role.value,
                _when(row.created_at),
                row.created_by,
                _when(row.last_used_at),
                _when(row.revoked_at),
            )
    if not rows:
        rt.say("no API keys (`gpuplan keys create --owner NAME --role admin` makes the first)")
        return
    rt.show(result)


@group.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `gpuplan keys list` shows it.")],
) -> None:
    """Revoke an API key: it stops working at once."""
    rt = runtime(ctx)
    with open_database() as database, database.transaction() as session:
        row = apikeys.revoke_key(session, prefix.strip(), actor=_actor("revoke"), now=rt.now())
        owner, revoked_at = row.owner, row.revoked_at
    rt.say(f"revoked key {prefix.strip()} of {owner} at {_when(revoked_at)}")
