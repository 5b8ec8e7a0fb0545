"""The frame every command shares: the typer app and its callback, the runtime a command takes from
outside its arguments (consoles, clock, collector registry), the database it opens, and the one place
where errors become exit statuses (``GpuplanGroup.invoke``).

A command module defines its commands and a ``register(app)`` function; ``api.cli.commands`` lists the
modules. Commands raise, they do not exit: ``InputError`` (bad user input) ends as exit status 1,
``DatabaseError`` (and any database error inside ``open_database``) as 2, click's usage errors as 64 and
Ctrl-C as 130, each as one line on stderr (statuses: ``api.cli.status.ExitStatus``).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from api.cli.status import ExitStatus
from pricing.collectors.base import CollectorRegistry
from pricing.collectors.registry import default_registry
from scheduler.db import migrate
from scheduler.db.session import Database, DatabaseError, error_line
from scheduler.logs import configure_logging, get_logger
from scheduler.settings import Settings, get_settings
from solver.errors import InputError

PIPED_WIDTH = 180
"""Width of output to a pipe or a file (CI logs, ``| less``) instead of rich's 80 columns. The ``COLUMNS``
environment variable sets the width of every output, a terminal's included."""

CLICK_USAGE_STATUS = 2
"""The status click gives its usage errors; gpuplan reports them as ``ExitStatus.USAGE``, since 2 means the
database."""

log = get_logger(__name__)


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else (None if stream.isatty() else PIPED_WIDTH)
    return Console(stderr=stderr, width=width)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Runtime:
    """What a command takes from outside its arguments. The app's callback makes the default one; a
    caller can pass its own as the click context's object (``CliRunner().invoke(app, args, obj=...)``).

    Output goes through ``say``/``show``/``error``/``warn``: text is printed as it is, never read as rich
    markup, so names with brackets (``[/]``, ``[bold]``) print literally."""

    now: Callable[[], dt.datetime] = utc_now
    collectors: Callable[[Iterable[Path]], CollectorRegistry] = default_registry
    """Builds the registry ``gpuplan collect`` runs (price-sheet paths in)."""

    @cached_property
    def out(self) -> Console:
        return make_console()

    @cached_property
    def err(self) -> Console:
        return make_console(stderr=True)

    def say(self, message: str) -> None:
        self.out.print(Text(message), soft_wrap=True)

    def show(self, *renderables: Any) -> None:
        """Print rich renderables (tables and ``Text`` from ``api.cli.render``), each on its own lines."""
        for renderable in renderables:
            self.out.print(renderable, soft_wrap=isinstance(renderable, Text))

    def error(self, message: str) -> None:
        self.err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)

    def warn(self, message: str) -> None:
        self.err.print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True)


def runtime(ctx: typer.Context) -> Runtime:
    return ctx.ensure_object(Runtime)


def settings() -> Settings:
    """The settings, or InputError naming every bad ``GPUPLAN_*`` variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = []
        for item in exc.errors(include_url=False):
            name = "GPUPLAN_" + "_".join(str(part) for part in item["loc"]).upper() if item["loc"] else ""
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if name else message)
        raise InputError("bad settings: " + "; ".join(problems)) from None


@contextmanager
def open_database(*, create: bool = False, check_revision: bool = True) -> Iterator[Database]:
    """The database the settings name, reachable, readable and (unless ``check_revision`` is off, for
    the migration commands) at this gpuplan's latest revision. Only ``create`` may make a new SQLite
    file. A database error inside the block becomes one DatabaseError line that names the database."""
    config = settings()
    database = Database.from_url(
        config.resolved_database_url, connect_timeout_s=config.db_connect_timeout_s, create=create
    )
    try:
        database.check_connection()
        if check_revision:
            migrate.require_latest_revision(database.engine)
        yield database
    except sa.exc.DBAPIError as exc:
        log.debug("database error", exc_info=exc)
        raise DatabaseError(f"database error at {database.url}: {error_line(exc)}") from exc
    finally:
        database.dispose()


def _fail(ctx: typer.Context, message: str, status: ExitStatus) -> NoReturn:
    runtime(ctx).error(message)
    raise typer.Exit(status)


def _usage_status(exc: typer.TyperException) -> None:
    if exc.exit_code == CLICK_USAGE_STATUS:
        exc.exit_code = ExitStatus.USAGE


class GpuplanGroup(TyperGroup):
    """The top-level command group. Every command runs inside its ``invoke``: the one place where
    errors become exit statuses."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as exc:  # the top-level options
            _usage_status(exc)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:  # click's own errors: a usage error of a command
            _usage_status(exc)
            raise
        except InputError as exc:
            _fail(ctx, str(exc), ExitStatus.BAD_INPUT)
        except DatabaseError as exc:
            _fail(ctx, str(exc), ExitStatus.DATABASE)
        except sa.exc.DBAPIError as exc:  # a database error outside open_database (none today)
            log.debug("database error", exc_info=exc)
            _fail(ctx, f"database error: {error_line(exc)}", ExitStatus.DATABASE)
        except KeyboardInterrupt:
            runtime(ctx).err.print(Text("interrupted"))
            raise typer.Exit(ExitStatus.INTERRUPTED) from None


def _callback(ctx: typer.Context) -> None:
    runtime(ctx)
    configure_logging(settings())


def build_app(*groups: Callable[[typer.Typer], None]) -> typer.Typer:
    """The ``gpuplan`` app with the commands each group's ``register`` adds."""
    app = typer.Typer(
        name="gpuplan",
        help="Cost-aware global scheduler and capacity planner for LLM inference GPUs.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        cls=GpuplanGroup,
    )
    app.callback()(_callback)
    for register in groups:
        register(app)
    return app


def sub_app(help_text: str) -> typer.Typer:
    """A command group (``gpuplan db ...``)."""
    return typer.Typer(help=help_text, no_args_is_help=True)
