"""``gpuplan collect``: prices and availability from the providers' APIs (and price sheets) into the
price history, each provider stored on its own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from api.cli.app import Runtime, open_database, runtime, settings
from api.cli.render.prices import collection_problems, collection_table
from api.cli.status import ExitStatus
from pricing.pricesheet import parse_moment
from scheduler.services import ingest as ingest_service
from solver.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)


def collect(
    ctx: typer.Context,
    provider: Annotated[
        list[str] | None,
        typer.Option("--provider", help="Provider to collect (repeatable; default: aws, gcp and azure)."),
    ] = None,
    sheet: Annotated[
        list[Path] | None,
        typer.Option("--sheet", exists=True, dir_okay=False, help="Also load this price sheet (repeatable)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Collect and report; write nothing.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Start of the spot price history to read (ISO 8601).")
    ] = None,
) -> None:
    """Collect prices and availability from the providers' APIs into the price history.

    Each provider is collected and stored on its own: one failing (no credentials, time-out) is reported on
    one line and recorded on its collection run, and the others' data is kept.
    """
    rt = runtime(ctx)
    start = parse_since(since)
    registry = rt.collectors(list(sheet or ()))
    sheet_names = [name for name in registry.names() if name.startswith(ingest_service.SHEET_PREFIX)]
    names = (
        [p.lower() for p in provider] if provider else [n for n in registry.names() if n not in sheet_names]
    )
    try:
        jobs = ingest_service.jobs_from_registry(registry, dict.fromkeys([*names, *sheet_names]))
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None
    run_collection(rt, jobs, since=start, dry_run=dry_run)


def parse_since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value.strip())
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from None


def run_collection(
    rt: Runtime,
    jobs: Sequence[ingest_service.CollectorJob],
    *,
    since: dt.datetime | None = None,
    dry_run: bool = False,
) -> None:
    """Run the jobs with a progress line and print the report; a failed provider ends the command."""
    config = settings()
    with open_database() as database:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=rt.out,
            transient=True,
        )
        with progress:
            task = progress.add_task("collecting", total=len(jobs))
            active: dict[str, str] = {}

            def on_progress(name: str, stage: str, _outcome: ingest_service.ProviderOutcome | None) -> None:
                if stage == ingest_service.Stage.DONE:
                    active.pop(name, None)
                    progress.advance(task)
                else:
                    active[name] = stage
                progress.update(task, description=", ".join(f"{n}: {s}" for n, s in active.items()) or "done")

            report = ingest_service.run_collection(
                database.transaction,
                jobs,
                now=rt.now(),
                ttls=ingest_service.StaleTtls.from_settings(config),
                since=since,
                dry_run=dry_run,
                timeout_s=config.collect_timeout_s,
                on_progress=on_progress,
            )
    rt.show(collection_table(report))
    for is_error, message in collection_problems(report):
        (rt.error if is_error else rt.warn)(message)
    if report.failed:
        raise typer.Exit(ExitStatus.PROVIDER_FAILED)
