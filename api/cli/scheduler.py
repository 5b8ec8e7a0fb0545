"""``gpuplan scheduler``: the scheduler process (``run``), its jobs and their next runs (``jobs``), and one
job run now (``run-once JOB``). The process is ``scheduler.process.SchedulerProcess``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer

from api.cli.app import Runtime, open_database, runtime, settings, sub_app
from api.cli.render import add_row, table
from api.cli.status import ExitStatus
from scheduler.db.models import JobRunStatus
from scheduler.jobs import last_runs
from scheduler.metrics import Metrics
from scheduler.process import SchedulerProcess

group = sub_app("The scheduler process: run it, list its jobs, run one now.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="scheduler")


def _printer(rt: Runtime) -> Callable[[str], None]:
    def say(line: str) -> None:
        rt.say(f"{rt.now():%Y-%m-%d %H:%M:%S} {line}")
        rt.out.file.flush()

    return say


@group.command("run")
def scheduler_run(ctx: typer.Context) -> None:
    """Run the jobs (collect, rebalance, apply, reconcile, expire) until SIGTERM; only the leader among the
    processes on one database runs them. Metrics on GPUPLAN_METRICS_PORT."""
    rt = runtime(ctx)
    config = settings()
    with open_database() as database:
        process = SchedulerProcess(database, config, metrics=Metrics.create(database), on_event=_printer(rt))
        process.run()


@group.command("jobs")
def scheduler_jobs(ctx: typer.Context) -> None:
    """List the jobs with their interval, next run and last run."""
    rt = runtime(ctx)
    with open_database() as database:
        process = SchedulerProcess(database, settings())
        views = process.jobs(rt.now())
        last = last_runs(database)
    result = table(
        f"{len(views)} jobs",
        ["job", ("every s", "right"), "next run (UTC)", "last run (UTC)", "status", "by", "what"],
        wrapping={"what"},
    )
    for view in views:
        run = last.get(view.spec.name)
        add_row(
            result,
            view.spec.name,
            f"{view.spec.interval_s:g}",
            f"{view.next_run:%Y-%m-%d %H:%M:%S}",
            f"{run.started_at:%Y-%m-%d %H:%M:%S}" if run else "-",
            run.status.value if run else "-",
            run.holder if run else "-",
            view.spec.description,
        )
    rt.show(result)


@group.command("run-once")
def scheduler_run_once(
    ctx: typer.Context, job: Annotated[str, typer.Argument(help="The job (`gpuplan scheduler jobs`).")]
) -> None:
    """Run one job now, in this process, and print what it did."""
    rt = runtime(ctx)
    with open_database() as database:
        process = SchedulerProcess(database, settings())
        spec = process.spec(job)
        rt.say(f"running {spec.name}: {spec.description}")
        outcome = process.run_once(spec.name)
    assert outcome.status is not None
    rt.say(f"{spec.name}: {outcome.status.value} in {outcome.seconds:.1f} s")
    rt.say(json.dumps(outcome.detail, indent=2, sort_keys=True, default=str))
    if outcome.status is JobRunStatus.FAILED:
        rt.error(outcome.error or "failed")
        raise typer.Exit(ExitStatus.JOB_FAILED)
