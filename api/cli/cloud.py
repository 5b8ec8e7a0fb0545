"""``gpuplan cloud``: the simulated cloud that plans are applied to by default (GPUPLAN_PROVISIONER=
simulated): its inventory, spot preemptions on command, instances deleted by hand, and its fault
configuration (GPUPLAN_SIM_FAULT_CONFIG; docs/operations.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.app import open_database, runtime, settings, sub_app
from api.cli.render.cloud import faults_lines, instances_table
from scheduler.provisioners.faults import read_fault_config
from scheduler.services.engine import build_engine
from solver.errors import InputError

group = sub_app("The simulated cloud: inventory, preemptions, faults.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="cloud")


@group.command("list")
def cloud_list(
    ctx: typer.Context,
    everything: Annotated[bool, typer.Option("--all", help="Ended instances too.")] = False,
) -> None:
    """The simulated cloud's instances (running ones; --all adds the ended ones)."""
    with open_database() as database:
        cloud = build_engine(database, settings()).simulated()
        instances = [i for i in cloud.inventory() if everything or i.alive]
    title = f"{len(instances)} {'instances' if everything else 'running instances'} in the simulated cloud"
    runtime(ctx).show(instances_table(instances, title=title))


@group.command("preempt")
def cloud_preempt(
    ctx: typer.Context,
    share: Annotated[
        float | None, typer.Option("--share", min=0.0, max=1.0, help="Share of the running spot instances.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Which ones (with --share).")] = 0,
    instance: Annotated[
        list[str] | None, typer.Option("--instance", help="Preempt this spot instance (repeatable).")
    ] = None,
) -> None:
    """Reclaim spot instances as a provider would: a seeded share of them, or the ones named."""
    if (share is None) == (not instance):
        raise InputError("give either --share (with --seed) or --instance")
    if share is not None and share <= 0:
        raise InputError(f"--share: {share} must be above 0")
    with open_database() as database:
        cloud = build_engine(database, settings()).simulated()
        taken = (
            cloud.preempt(instance or []) if instance else cloud.preempt_random(share=share or 0, seed=seed)
        )
    rt = runtime(ctx)
    if instance:
        missing = sorted(set(instance) - {i.instance_id for i in taken})
        if missing:
            rt.warn(f"not running spot instances, left alone: {', '.join(missing)}")
    rt.show(instances_table(taken, title=f"{len(taken)} spot instances preempted"))
    if taken:
        rt.say("`gpuplan reconcile` marks them and re-plans the models they served")


@group.command("delete")
def cloud_delete(
    ctx: typer.Context, instance: Annotated[list[str], typer.Argument(help="Instance ids.")]
) -> None:
    """Delete instances by hand, outside gpuplan (reconciliation finds them gone)."""
    with open_database() as database:
        cloud = build_engine(database, settings()).simulated()
        running = {i.instance_id for i in cloud.inventory() if i.alive}
        unknown = sorted(set(instance) - running)
        if unknown:
            raise InputError(f"no running instance {', '.join(unknown)} in the simulated cloud")
        cloud.delete_by_hand(instance)
    runtime(ctx).say(f"deleted {len(instance)} instances by hand")


@group.command("faults")
def cloud_faults(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="Fault file to check (default: GPUPLAN_SIM_FAULT_CONFIG).")
    ] = None,
) -> None:
    """Check a fault configuration and show its rules (the simulated cloud uses the file that
    GPUPLAN_SIM_FAULT_CONFIG names)."""
    config = settings()
    source = path or config.sim_fault_config
    rt = runtime(ctx)
    if source is None:
        rt.say("no fault configuration: GPUPLAN_SIM_FAULT_CONFIG is not set, every call succeeds")
        return
    rt.show(*faults_lines(read_fault_config(source), source=str(source)))
    if path is not None and path != config.sim_fault_config:
        rt.say(f"to use it: GPUPLAN_SIM_FAULT_CONFIG={path}")
