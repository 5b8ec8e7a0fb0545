"""``gpuplan events load FILE``: interruption notices in EventBridge's message shape (an EC2 Spot Instance
Interruption Warning; one event, a JSON list, or one per line; ``-`` reads stdin), stored and turned
into the same fast re-plan as a preemption (``scheduler.services.interruptions``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.app import open_database, runtime, settings, sub_app
from api.cli.plans import show_run
from api.cli.render.plans import fleet_cost_line
from scheduler.services.engine import build_engine
from scheduler.services.fleetstate import fleet_view
from scheduler.services.interruptions import handle_notices, parse_eventbridge, record_notices
from solver.errors import InputError
from solver.problem import SolveParams

group = sub_app("Provider events: spot interruption notices.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="events")


@group.command("load")
def events_load(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="JSON file of EventBridge events, or - for stdin.")],
    replan: Annotated[
        bool,
        typer.Option("--replan/--no-replan", help="Re-plan and apply now (else the scheduler's next tick)."),
    ] = True,
) -> None:
    """Load AWS spot interruption notices; the instances are replaced by a fast re-plan of their models."""
    rt = runtime(ctx)
    if path == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        try:
            text, source = Path(path).read_text(encoding="utf-8"), path
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"cannot read the events file {path}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    events = parse_eventbridge(text, source=source)
    config = settings()
    with open_database() as database:
        with database.transaction() as session:
            records = record_notices(session, events, now=rt.now())
        for item in records:
            rt.say(f"interruption notice for aws/{item.instance_id}{'' if item.new else ' (already known)'}")
        if not replan:
            rt.say("stored; the scheduler's reconcile job re-plans the models they serve")
            return
        engine = build_engine(database, config)
        apply_ctx = engine.context(clock=rt.now)
        run = handle_notices(
            apply_ctx, SolveParams(time_limit_s=config.replan_time_limit_s), actor="gpuplan events"
        )
        for instance in run.unknown:
            rt.warn(f"aws/{instance} is not a running instance of the fleet: nothing to replace")
        if run.lost_replicas:
            short = ", ".join(f"{model} -{n}" for model, n in sorted(run.lost_replicas.items()))
            rt.say(f"interrupted: {', '.join(run.interrupted)}; replicas to replace: {short}")
        if run.replan is not None:
            show_run(rt, run.replan)
        if run.terminated:
            rt.say(f"terminated the interrupted instances: {', '.join(run.terminated)}")
        for error in run.errors:
            rt.error(error)
        with database.transaction() as session:
            rt.show(fleet_cost_line(fleet_view(session)))
