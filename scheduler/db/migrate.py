"""Run the Alembic migrations shipped in the top-level ``migrations`` package, and check a database's
revision before it is used.

Every command but the migration commands works only on a database at this gpuplan's latest revision
(``require_latest_revision``): an unmigrated, older or unknown one is refused with a line saying what to run.
A revision argument that names no migration is bad input (``RevisionArgumentError``), not an Alembic
traceback.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from scheduler.db.session import DatabaseError, redact
from solver.errors import InputError

SPECIAL_REVISIONS = ("head", "base")


class DatabaseRevisionError(DatabaseError):
    """The database is not at the revision this gpuplan needs (unmigrated, older, or unknown to it)."""


class RevisionArgumentError(InputError):
    """A migration target that names no revision of this gpuplan."""


def migrations_dir() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the migrations package is not installed next to gpuplan")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    directory = migrations_dir()
    config = Config(str(directory / "alembic.ini"))
    config.set_main_option("script_location", str(directory))
    # The ini's prepend_sys_path is for the alembic command run from the repository; here the migrations
    # are imported as a package already, and prepending on every call would grow sys.path each time.
    config.set_main_option("prepend_sys_path", "")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def revisions() -> list[str]:
    """This gpuplan's revisions, oldest first."""
    return [script.revision for script in reversed(list(_scripts().walk_revisions()))]


def _migrate(engine: Engine, revision: str, *, up: bool) -> None:
    _require_known_revision(engine)
    try:
        _scripts().get_revisions(revision)
    except CommandError as exc:
        raise RevisionArgumentError(_revision_argument_message(revision, exc)) from None
    try:
        with engine.begin() as connection:
            migrate = command.upgrade if up else command.downgrade
            migrate(alembic_config(connection), revision)
    except CommandError as exc:  # a relative target (-1, +2) that goes past either end
        raise RevisionArgumentError(_revision_argument_message(revision, exc)) from None


def _revision_argument_message(revision: str, exc: CommandError) -> str:
    known = ", ".join([*revisions(), *SPECIAL_REVISIONS])
    return f"cannot migrate to {revision!r}: {exc} (revisions: {known}; or a relative step such as -1)"


def upgrade(engine: Engine, revision: str = "head") -> None:
    _migrate(engine, revision, up=True)


def downgrade(engine: Engine, revision: str = "base") -> None:
    _migrate(engine, revision, up=False)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return _scripts().get_current_head()


def _require_known_revision(engine: Engine) -> str | None:
    current = current_revision(engine)
    if current is not None and current not in revisions():
        raise DatabaseRevisionError(
            f"the database at {redact(engine.url)} is at revision {current!r}, which this gpuplan does "
            f"not know (its latest is {head_revision()}; was it migrated by a newer gpuplan?): use that "
            "gpuplan, or `gpuplan db upgrade` a new database"
        )
    return current


def require_latest_revision(engine: Engine) -> None:
    """Raise DatabaseRevisionError unless the database is at this gpuplan's latest revision."""
    current = _require_known_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = f"the database at {redact(engine.url)}"
    if current is None:
        raise DatabaseRevisionError(f"{where} is not migrated: run `gpuplan db upgrade`")
    raise DatabaseRevisionError(
        f"{where} is at revision {current}, older than this gpuplan's {head}: run `gpuplan db upgrade`"
    )
