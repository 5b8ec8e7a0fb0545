"""``gpuplan plans``: stored plans, their diff and their lifecycle (list, show, diff, approve, reject, apply,
cancel), and ``gpuplan apply``, which applies a plan or finishes interrupted applies (``--resume``).

The work is ``scheduler.services.plans`` (lifecycle), ``scheduler.services.apply`` (the engine) and
``scheduler.services.loop`` (the re-plan of models whose launches ran out of capacity); what applies plans
comes from the settings (``scheduler.services.engine``). Bad input (an unknown plan, an illegal
transition, the author approving, a stale plan, a second apply) is an ``InputError``: one line, exit 1.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.text import Text

from api.cli.app import Runtime, open_database, runtime, settings, sub_app
from api.cli.render.plans import actions_table, diff_lines, plan_lines, plans_table, status_text
from api.cli.status import ExitStatus
from scheduler.db.models import PlanStatus
from scheduler.services import apply as apply_service
from scheduler.services import plans as plan_service
from scheduler.services.engine import Engine, build_engine
from scheduler.services.loop import PlanRun, follow_up
from solver.errors import InputError
from solver.problem import SolveParams
from solver.units import format_usd

group = sub_app("Stored plans: list, show, diff, approve, reject, apply, cancel.")

ACTOR_OPTION = typer.Option("--actor", help="Who does it (written to the audit log).")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="plans")
    app.command("apply")(apply)


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "gpuplan"


def _actor(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError(f"--actor: {name!r} must be 1 to 200 characters")
    return name


@group.command("list")
def plans_list(
    ctx: typer.Context,
    status: Annotated[PlanStatus | None, typer.Option("--status", help="Only plans in this state.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")] = 50,
) -> None:
    """List stored plans, newest first, with their state, cost delta and why they are in it."""
    with open_database() as database, database.transaction() as session:
        summaries = plan_service.list_plans(session, status=status, limit=limit)
    runtime(ctx).show(plans_table(summaries))


@group.command("show")
def plans_show(ctx: typer.Context, plan_id: Annotated[int, typer.Argument(help="Plan id.")]) -> None:
    """Show a plan: its state and why, cost, inputs, audit trail and actions."""
    with open_database() as database, database.transaction() as session:
        detail = plan_service.plan_detail(session, plan_id)
        outcomes = apply_service.action_outcomes(session, plan_id)
    rt = runtime(ctx)
    rt.show(*plan_lines(detail))
    if outcomes:
        rt.show(actions_table(plan_id, outcomes))


@group.command("diff")
def plans_diff(ctx: typer.Context, plan_id: Annotated[int, typer.Argument(help="Plan id.")]) -> None:
    """Show a plan against the fleet it was computed from: per offer launch, keep and terminate, replicas
    moved per model, the cost delta, and the SLO, residency and redundancy coverage before and after."""
    with open_database() as database, database.transaction() as session:
        row = plan_service.get_plan(session, plan_id)
        diff = plan_service.stored_diff(row)
    if diff is None:
        raise InputError(f"plan {plan_id} has no diff (it was stored before plans kept one)")
    runtime(ctx).show(*diff_lines(plan_id, diff))


@group.command("approve")
def plans_approve(
    ctx: typer.Context,
    plan_id: Annotated[int, typer.Argument(help="Plan id.")],
    actor: Annotated[str, ACTOR_OPTION],
) -> None:
    """Approve a plan waiting for approval. The approver may not be its author (four eyes); a plan whose
    inputs moved is marked stale instead and refused."""
    name = _actor(actor)
    with open_database() as database:
        with database.transaction() as session:
            row = plan_service.approve(
                session, plan_id, actor=name, now=runtime(ctx).now(), settings=settings()
            )
            status = row.status
        if status is PlanStatus.STALE:  # the stale mark is committed; now say so
            with database.transaction() as session:
                plan_service.raise_if_stale(plan_service.get_plan(session, plan_id))
    runtime(ctx).show(status_line(plan_id, status, name))


@group.command("reject")
def plans_reject(
    ctx: typer.Context,
    plan_id: Annotated[int, typer.Argument(help="Plan id.")],
    actor: Annotated[str, ACTOR_OPTION],
    reason: Annotated[str, typer.Option("--reason", help="Why (written to the audit log).")] = "",
) -> None:
    """Reject a plan not yet applying."""
    name = _actor(actor)
    with open_database() as database, database.transaction() as session:
        row = plan_service.reject(session, plan_id, actor=name, now=runtime(ctx).now(), reason=reason)
        status = row.status
    runtime(ctx).show(status_line(plan_id, status, name))


@group.command("cancel")
def plans_cancel(
    ctx: typer.Context,
    plan_id: Annotated[int, typer.Argument(help="Plan id.")],
    actor: Annotated[str, ACTOR_OPTION],
) -> None:
    """Cancel a plan: one not yet applying is rejected; one applying stops sending actions (those not yet
    sent are cancelled; the ones in flight finish)."""
    name = _actor(actor)
    with open_database() as database, database.transaction() as session:
        row = apply_service.cancel(session, plan_id, actor=name, now=runtime(ctx).now())
        status = row.status
    rt = runtime(ctx)
    if status is PlanStatus.APPLYING:
        rt.say(f"plan {plan_id} is applying: the actions not yet sent are cancelled")
    else:
        rt.show(status_line(plan_id, status, name))


@group.command("apply")
def plans_apply(
    ctx: typer.Context,
    plan_id: Annotated[int, typer.Argument(help="Plan id.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish an interrupted apply; retry what did not succeed.")
    ] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who applies (default: the login name).")
    ] = None,
) -> None:
    """Apply an approved plan (launch, then routing, then terminate), action by action."""
    name = _actor(actor or default_actor())
    with open_database() as database:
        engine = build_engine(database, settings())
        apply_one(runtime(ctx), engine, plan_id, actor=name, resume=resume)


def apply(
    ctx: typer.Context,
    plan_id: Annotated[int | None, typer.Argument(help="Plan id (none, with --resume: every one).")] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Finish interrupted applies (of PLAN_ID, or of every plan left applying)."
        ),
    ] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who applies (default: the login name).")
    ] = None,
) -> None:
    """Apply an approved plan, or with --resume finish what an interrupted apply left."""
    name = _actor(actor or default_actor())
    rt = runtime(ctx)
    with open_database() as database:
        engine = build_engine(database, settings())  # a malformed fault file is refused before anything
        if plan_id is not None:
            apply_one(rt, engine, plan_id, actor=name, resume=resume)
            return
        if not resume:
            raise InputError(
                "name the plan to apply (`gpuplan apply ID`), or finish interrupted ones with --resume"
            )
        with database.transaction() as session:
            left = apply_service.resumable_plans(session)
        if not left:
            rt.say("no plan is left applying")
            return
        incomplete = False
        for plan in left:
            try:
                incomplete |= not apply_one(rt, engine, plan, actor=name, resume=True, exit_on_failure=False)
            except plan_service.PlanBusyError as exc:  # its applier is alive: leave it
                rt.warn(str(exc))
        if incomplete:
            raise typer.Exit(ExitStatus.NOT_APPLIED)


def apply_one(
    rt: Runtime, engine: Engine, plan_id: int, *, actor: str, resume: bool, exit_on_failure: bool = True
) -> bool:
    """Apply (or resume) one plan, print every action's outcome and the re-plans of models whose launches
    ran out of capacity; True when the plan ended applied."""
    config = engine.settings
    ctx = engine.context(clock=rt.now)
    report = apply_service.apply_plan(ctx, plan_id, actor=actor, resume=resume)
    rt.show(actions_table(plan_id, report.outcomes))
    rt.show(
        status_line(plan_id, report.status, actor)
        + f" ({report.succeeded} of {len(report.outcomes)} actions succeeded in {report.seconds:.1f} s)"
    )
    params = SolveParams(time_limit_s=config.replan_time_limit_s)
    for run in follow_up(ctx, report, actor=actor, params=params, depth=config.replan_depth):
        show_run(rt, run)
    if report.status is not PlanStatus.APPLIED and exit_on_failure:
        raise typer.Exit(ExitStatus.NOT_APPLIED)
    return report.status is PlanStatus.APPLIED


def status_line(plan_id: int, status: PlanStatus, actor: str) -> Text:
    return Text.assemble(f"plan {plan_id} is ", status_text(status.value), f" ({actor})")


def show_run(rt: Runtime, run: PlanRun, *, indent: str = "") -> None:
    """A plan the loop made: what it re-planned, its state, and its apply."""
    what = f"models {', '.join(run.models)}" if run.models else "the fleet"
    if run.plan_id is None:
        rt.say(f"{indent}re-plan of {what} ({run.trigger}): no plan ({run.result.status.value})")
        return
    cost = format_usd(run.result.cost_micro_usd_per_hour or 0)
    rt.say(
        f"{indent}plan {run.plan_id} ({run.trigger}, {what}): {cost}/h, "
        f"{run.status.value if run.status else '-'}" + (f": {run.reason}" if run.reason else "")
    )
    if run.apply is not None:
        rt.show(actions_table(run.plan_id, run.apply.outcomes))
        rt.say(f"{indent}plan {run.plan_id} is {run.apply.status.value}")
    for followup in run.followups:
        show_run(rt, followup, indent=indent + "  ")
