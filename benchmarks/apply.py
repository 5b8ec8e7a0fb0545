"""Apply benchmark: the apply engine and the loop on the simulated cloud (docs/benchmarks.md, "Applying
plans").

    .venv/bin/python benchmarks/apply.py                      # everything (about 10 min on 2 cores)
    .venv/bin/python benchmarks/apply.py --seeds 5 --time-limit 10   # a quicker, smaller run

The M benchmark scenario (``benchmarks.scenarios``: 50 models, 20 sources) is loaded into an embedded
SQLite database as the loop expects it: the shipped catalog, M's models, sources, demand and policy as a
fleet document, and M's availability as availability observations (the database keeps availability per
machine and location, not per purchase option: the largest of M's per-option stocks is written there, and
machines whose on-demand capacity M leaves unlimited get none, that is unlimited). The simulated cloud's
capacity is that availability. Then:

1. **Throughput.** M at 16 times its demand (``--demand-factor``) is planned (``--time-limit``, 30 s) and
   applied from an empty fleet; then no model may run on spot any more (every model's spot share set to
   0, a FinOps decision) and M is re-planned: every spot instance has to go, so the plan has a launch per
   new offer and a termination per instance it replaces, well over 500 actions. Its apply is timed:
   actions per second.
2. **Crash and resume** (``--seeds``, 20): from a copy of the database holding M's approved first plan
   (an empty fleet to launch), a child process applies it and is killed (``os._exit``) at a random step
   of the apply (seeded); ``apply --resume`` then finishes it. Timed: from the kill to a finished,
   consistent fleet. Checked: no duplicate instance (an action whose instances outnumber what it
   asked) and no orphan (a running instance of the cloud the fleet does not know, or the reverse).
3. **Preemption.** On the applied M fleet, 10% of the running spot instances are preempted (seeded). Timed:
   from the preemption to the re-planned fleet applied (the reconcile job: reconciliation, the fast re-plan
   of the affected models with the rest held, ``GPUPLAN_REPLAN_TIME_LIMIT_S``, its apply). Reported:
   replicas lost and moved, the cost after, and the cost of a full re-plan of M from the same fleet with
   the whole time limit.

Every figure is printed with the machine's load average, since the machine may be shared.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from benchmarks import scenarios
from pricing.catalog import load_catalog
from scheduler.db import migrate
from scheduler.db.models import (
    AvailabilityObservationRow,
    CollectionKind,
    CollectionRunRow,
    CollectionStatus,
    DemandRow,
    FleetInstanceRow,
    OfferRow,
    PlanStatus,
    ProvisioningActionRow,
    ServedModelRow,
    SimInstanceRow,
)
from scheduler.db.session import Database
from scheduler.jobs import JobContext, JobRunner, job_specs
from scheduler.provisioners.simulated import SimulatedCloud, simulated_registry
from scheduler.services import plans as plan_service
from scheduler.services.apply import ApplyContext, ApplyReport, apply_plan
from scheduler.services.catalog import load_catalog as load_catalog_into_db
from scheduler.services.engine import Engine
from scheduler.services.fleet import load_fleet
from scheduler.services.fleetstate import LIVE, fleet_view
from scheduler.services.planning import plan_fleet
from scheduler.settings import Settings
from solver.domain import AvailabilityStatus
from solver.fleetspec import ChurnSpec, FleetSpec, PolicySpec
from solver.problem import SolveParams
from solver.units import MICRO_PER_USD, format_usd

SIZE = "M"
MIN_ACTIONS = 500
PREEMPT_SHARE = 0.10
PREEMPT_SEED = 11
PREEMPTION_TARGET_S = 30.0
ACTOR = "benchmark"
REVIEWER = "benchmark-reviewer"
CRASH_EXIT = 86


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def settings(**values: Any) -> Settings:
    base = {
        "auto_apply": False,
        "apply_backoff_s": 0.0,
        "apply_backoff_max_s": 0.0,
        "apply_lease_s": 1.0,
        "replan_depth": 0,
    }
    return Settings(**(base | values))


def context(
    database: Database, config: Settings, *, holder: str = "benchmark"
) -> tuple[ApplyContext, SimulatedCloud]:
    cloud = SimulatedCloud(database)
    ctx = ApplyContext(database=database, registry=simulated_registry(cloud), settings=config, holder=holder)
    return ctx, cloud


# ------------------------------------------------------------------------------------------- set-up


def fleet_document(scenario: scenarios.Scenario) -> FleetSpec:
    policy = scenario.policy
    return FleetSpec(
        models=scenario.models,
        sources=scenario.sources,
        demand=scenario.demand,
        policy=PolicySpec(
            name=f"benchmark-{scenario.name}",
            target_utilisation=policy.target_utilisation,
            churn=ChurnSpec(
                penalty_usd_per_replica_move=Decimal(policy.churn.penalty_micro_usd_per_replica_move)
                / MICRO_PER_USD,
                max_moved_share=policy.churn.max_moved_share,
                min_saving_share=policy.churn.min_saving_share,
            ),
        ),
    )


def write_availability(database: Database, scenario: scenarios.Scenario, now: dt.datetime) -> int:
    """M's stock per offer as observations per (instance type, region, zone): the largest stock of the
    machine's purchase options there, none where one of them is unlimited."""
    with database.transaction() as session:
        offers = session.execute(
            sa.select(OfferRow.key, OfferRow.instance_type_id, OfferRow.region_id, OfferRow.zone)
        ).all()
        groups: dict[tuple[int, int, str], list[str]] = defaultdict(list)
        for key, instance_type_id, region_id, zone in offers:
            groups[(instance_type_id, region_id, zone)].append(key)
        run = CollectionRunRow(
            kind=CollectionKind.CATALOG,
            source=f"benchmark availability ({scenario.name})",
            started_at=now,
            finished_at=now,
            status=CollectionStatus.SUCCEEDED,
        )
        session.add(run)
        session.flush()
        rows = []
        for (instance_type_id, region_id, zone), keys in groups.items():
            stocks = [scenario.availability.get(key) for key in keys]
            if any(stock is None for stock in stocks):
                continue
            rows.append(
                {
                    "instance_type_id": instance_type_id,
                    "region_id": region_id,
                    "zone": zone,
                    "observed_at": now,
                    "status": AvailabilityStatus.OFFERED if max(stocks) else AvailabilityStatus.NOT_OFFERED,  # type: ignore[type-var]
                    "available_instances": max(stocks),  # type: ignore[type-var]
                    "detail": "benchmark stand-in",
                    "source": "benchmark",
                    "collection_run_id": run.id,
                }
            )
        if rows:
            session.execute(sa.insert(AvailabilityObservationRow), rows)
    return len(rows)


def set_up(path: Path) -> tuple[Database, scenarios.Scenario]:
    started = time.perf_counter()
    path.unlink(missing_ok=True)
    scenario = scenarios.size(SIZE)
    database = Database.from_url(f"sqlite:///{path}", create=True)
    migrate.upgrade(database.engine)
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as session:
        load_catalog_into_db(session, load_catalog(), now=now)
    with database.transaction() as session:
        load_fleet(session, fleet_document(scenario), now=now, actor=ACTOR)
    observations = write_availability(database, scenario, now)
    say(
        f"set-up: M ({len(scenario.models)} models, {len(scenario.sources)} sources, {len(scenario.demand)} "
        f"demands) loaded with {observations} availability observations "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return database, scenario


def approve(database: Database, plan_id: int, config: Settings) -> None:
    with database.transaction() as session:
        plan_service.submit(session, plan_id, now=dt.datetime.now(dt.UTC), settings=config, actor=ACTOR)
    with database.transaction() as session:
        row = plan_service.get_plan(session, plan_id)
        if row.status is PlanStatus.PENDING_APPROVAL:
            plan_service.approve(
                session, plan_id, actor=REVIEWER, now=dt.datetime.now(dt.UTC), settings=config
            )
    with database.transaction() as session:
        plan_service.raise_if_stale(plan_service.get_plan(session, plan_id))


def plan(database: Database, time_limit: float, *, trigger: str) -> tuple[int, float]:
    started = time.perf_counter()
    outcome = plan_fleet(
        database,
        SolveParams(time_limit_s=time_limit),
        now=dt.datetime.now(dt.UTC),
        actor=ACTOR,
        trigger=trigger,
    )
    if outcome.plan_id is None:
        raise SystemExit(f"no plan of M ({outcome.result.status.value})")
    return outcome.plan_id, time.perf_counter() - started


# -------------------------------------------------------------------------------------------- checks


def consistency(database: Database) -> tuple[int, int]:
    """(duplicate actions, orphans): actions whose instances outnumber what they asked; running
    instances of the cloud the fleet does not know, and live instances of the fleet the cloud does not run."""
    with database.transaction() as session:
        asked = dict(
            session.execute(
                sa.select(ProvisioningActionRow.idempotency_key, ProvisioningActionRow.instances)
            ).all()
        )
        made = Counter(session.scalars(sa.select(SimInstanceRow.action_key)).all())
        cloud = set(
            session.scalars(sa.select(SimInstanceRow.instance_id).where(SimInstanceRow.state == "running"))
        )
        fleet = set(
            session.scalars(sa.select(FleetInstanceRow.instance_id).where(FleetInstanceRow.state.in_(LIVE)))
        )
    duplicates = sum(1 for key, count in made.items() if count > asked.get(key, 0))
    return duplicates, len(cloud ^ fleet)


def kinds(report: ApplyReport) -> str:
    counted = Counter(outcome.kind.value for outcome in report.outcomes)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counted.items()))


# ----------------------------------------------------------------------------------------- throughput


def scale_demand(database: Database, factor: int) -> None:
    with database.transaction() as session:
        session.execute(sa.update(DemandRow).values(tokens_per_s=DemandRow.tokens_per_s * factor))


def timed_apply(database: Database, plan_id: int, config: Settings) -> tuple[ApplyReport, float]:
    ctx, _cloud = context(database, config)
    started = time.perf_counter()
    report = apply_plan(ctx, plan_id, actor=ACTOR)
    return report, time.perf_counter() - started


def forbid_spot(database: Database) -> None:
    """A FinOps decision: no model may run on spot any more (every spot instance has to go)."""
    with database.transaction() as session:
        session.execute(sa.update(ServedModelRow).values(max_spot_share=0.0))


def throughput(work: Path, time_limit: float, demand_factor: int) -> dict[str, Any]:
    say(
        f"\n=== throughput: M at {demand_factor}x its demand, then no model may run on spot "
        f"(load {load()}) ==="
    )
    database, _scenario = set_up(work / "throughput.sqlite")
    config = settings()
    try:
        scale_demand(database, demand_factor)
        first, seconds = plan(database, time_limit, trigger="manual")
        approve(database, first, config)
        launch, launch_s = timed_apply(database, first, config)
        with database.transaction() as session:
            view = fleet_view(session)
        spot = sum(offer.instances for offer in view.offers if offer.purchase_option == "spot")
        say(
            f"plan {first} ({seconds:.1f} s): {view.instances} instances ({spot} spot) on "
            f"{len(view.offers)} offers, {format_usd(view.cost_micro_usd_per_hour)}/h; applied "
            f"{len(launch.outcomes)} actions ({kinds(launch)}) in {launch_s:.1f} s = "
            f"{len(launch.outcomes) / launch_s:.1f} actions/s, {launch.status.value} (load {load()})"
        )
        forbid_spot(database)
        second, seconds = plan(database, time_limit, trigger="manual")
        approve(database, second, config)
        migration, migration_s = timed_apply(database, second, config)
        actions = len(migration.outcomes)
        rate = actions / migration_s
        duplicates, orphans = consistency(database)
        with database.transaction() as session:
            after = fleet_view(session)
        say(
            f"plan {second} without spot ({seconds:.1f} s): {after.instances} instances, "
            f"{format_usd(after.cost_micro_usd_per_hour)}/h; applied {actions} actions ({kinds(migration)}) "
            f"in {migration_s:.1f} s = {rate:.1f} actions/s, {migration.status.value}; {duplicates} "
            f"duplicates, {orphans} orphans (load {load()})"
        )
        say(
            f"a plan of >= {MIN_ACTIONS} actions: "
            f"{'MET' if actions >= MIN_ACTIONS else 'NOT MET'} ({actions})"
        )
        return {
            "first_plan": {
                "actions": len(launch.outcomes),
                "seconds": launch_s,
                "status": launch.status.value,
            },
            "migration_plan": {
                "actions": actions,
                "seconds": migration_s,
                "actions_per_s": rate,
                "status": migration.status.value,
                "instances_before": view.instances,
                "spot_before": spot,
                "instances_after": after.instances,
            },
            "duplicates": duplicates,
            "orphans": orphans,
        }
    finally:
        database.dispose()


# ------------------------------------------------------------------------------------ crash and resume

CHILD = """
import os, sys
sys.path.insert(0, {root!r})
from benchmarks.apply import crash_child
crash_child({url!r}, {plan_id}, {crash_at})
"""


def crash_child(url: str, plan_id: int, crash_at: int) -> None:
    """In a child process: apply the plan and end the process without clean-up at step ``crash_at``."""
    database = Database.from_url(url)
    ctx, _cloud = context(database, settings(), holder=f"crash-{os.getpid()}")
    steps = 0

    def on_step(_name: str) -> None:
        nonlocal steps
        steps += 1
        if steps == crash_at:
            sys.stdout.write(f"{steps}\n")
            sys.stdout.flush()
            os._exit(CRASH_EXIT)

    ctx.on_step = on_step
    apply_plan(ctx, plan_id, actor="crash")
    sys.stdout.write(f"finished {steps}\n")


def count_steps(template: Path, work: Path, plan_id: int) -> int:
    path = work / "steps.sqlite"
    shutil.copyfile(template, path)
    database = Database.from_url(f"sqlite:///{path}")
    ctx, _cloud = context(database, settings())
    steps = 0

    def on_step(_name: str) -> None:
        nonlocal steps
        steps += 1

    ctx.on_step = on_step
    apply_plan(ctx, plan_id, actor="count")
    database.dispose()
    return steps


def crashes(template: Path, work: Path, plan_id: int, seeds: int) -> dict[str, Any]:
    say(f"\n=== crash at a random step, {seeds} seeds (load {load()}) ===")
    steps = count_steps(template, work, plan_id)
    say(f"the apply of plan {plan_id} takes {steps} steps")
    times: list[float] = []
    bad = 0
    root = str(Path(__file__).resolve().parents[1])
    for seed in range(1, seeds + 1):
        crash_at = random.Random(seed).randint(1, steps)
        path = work / f"crash-{seed}.sqlite"
        shutil.copyfile(template, path)
        url = f"sqlite:///{path}"
        child = subprocess.run(
            [sys.executable, "-c", CHILD.format(root=root, url=url, plan_id=plan_id, crash_at=crash_at)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        killed = time.perf_counter()
        if child.returncode not in (0, CRASH_EXIT):
            raise SystemExit(f"seed {seed}: the child failed: {child.stderr[-2000:]}")
        database = Database.from_url(url)
        config = settings()
        ctx, _cloud = context(database, config, holder="resume")
        with database.transaction() as session:
            status = plan_service.get_plan(session, plan_id).status
        deadline = time.monotonic() + 60
        while status is not PlanStatus.APPLIED:
            try:
                report = apply_plan(ctx, plan_id, actor="resume", resume=status is not PlanStatus.APPROVED)
                status = report.status
                if status is not PlanStatus.APPLIED:
                    raise SystemExit(f"seed {seed}: resumed plan is {status.value}")
            except plan_service.PlanBusyError:  # the dead child's lease has not expired yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        elapsed = time.perf_counter() - killed
        duplicates, orphans = consistency(database)
        database.dispose()
        bad += duplicates + orphans
        times.append(elapsed)
        say(
            f"seed {seed:2d}: killed at step {crash_at:4d} of {steps}; finished {elapsed:5.2f} s later; "
            f"{duplicates} duplicates, {orphans} orphans"
        )
        path.unlink()
    say(
        f"time to a finished, consistent fleet after the kill: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s; {bad} duplicates or orphans in all (load {load()})"
    )
    return {
        "steps": steps,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "bad": bad,
        "times": times,
    }


# ----------------------------------------------------------------------------------------- preemption


def preemption(applied: Path, work: Path, time_limit: float, replan_time_limit: float) -> dict[str, Any]:
    say(f"\n=== preemption of {PREEMPT_SHARE:.0%} of the spot instances of the M fleet (load {load()}) ===")
    path = work / "preempt.sqlite"
    shutil.copyfile(applied, path)
    database = Database.from_url(f"sqlite:///{path}")
    config = settings(
        auto_apply=True,
        replan_time_limit_s=replan_time_limit,
    )
    cloud = SimulatedCloud(database)
    engine = Engine(database, config, simulated_registry(cloud), cloud)
    job = JobContext(database=database, settings=config, engine=engine, holder="benchmark")
    runner = JobRunner(job)
    reconcile = next(spec for spec in job_specs(config) if spec.name == "reconcile")
    with database.transaction() as session:
        before = fleet_view(session)
    spot_running = sum(1 for i in cloud.inventory() if i.alive and i.spot)
    started = time.perf_counter()
    taken = cloud.preempt_random(share=PREEMPT_SHARE, seed=PREEMPT_SEED)
    full_copy = work / "full.sqlite"
    shutil.copyfile(path, full_copy)  # the same moment, for the full re-plan
    outcome = runner.run(reconcile, dt.datetime.now(dt.UTC))
    elapsed = time.perf_counter() - started
    replan = outcome.detail.get("replan") or {}
    with database.transaction() as session:
        after = fleet_view(session)
        fast_cost = None
        moved = None
        if replan.get("plan"):
            row = plan_service.get_plan(session, replan["plan"])
            fast_cost = row.cost_micro_usd_per_hour
            diff = plan_service.stored_diff(row)
            moved = diff.moved_total if diff else None
    duplicates, orphans = consistency(database)
    database.dispose()
    lost = outcome.detail.get("lost_replicas", {})
    say(
        f"{len(taken)} of {spot_running} running spot instances preempted; {sum(lost.values())} replicas of "
        f"{len(lost)} models lost"
    )
    say(
        f"event to re-planned fleet applied: {elapsed:.1f} s (re-plan time limit {replan_time_limit:g} s; "
        f"target <= {PREEMPTION_TARGET_S:g} s: {'MET' if elapsed <= PREEMPTION_TARGET_S else 'NOT MET'}); "
        f"plan {replan.get('plan')} {replan.get('status')}, {replan.get('actions')} actions, "
        f"replicas moved {moved}; "
        f"{duplicates} duplicates, {orphans} orphans (load {load()})"
    )
    # the full re-plan of M from the same fleet (after the preemption), not applied
    full_db = Database.from_url(f"sqlite:///{full_copy}")
    full_ctx, _ = context(full_db, config)
    from scheduler.services.reconcile import reconcile as reconcile_inventory  # noqa: PLC0415

    reconcile_inventory(
        full_db, full_ctx.registry, now=dt.datetime.now(dt.UTC), stray_policy=config.stray_policy
    )
    full_started = time.perf_counter()
    full_plan, _seconds = plan(full_db, time_limit, trigger="preemption")
    full_s = time.perf_counter() - full_started
    with full_db.transaction() as session:
        row = plan_service.get_plan(session, full_plan)
        full_cost = row.cost_micro_usd_per_hour
        full_diff = plan_service.stored_diff(row)
    full_db.dispose()
    ratio = fast_cost / full_cost if fast_cost and full_cost else None
    say(
        f"cost: before {format_usd(before.cost_micro_usd_per_hour)}/h; after the fast re-plan "
        f"{format_usd(after.cost_micro_usd_per_hour)}/h (plan {format_usd(fast_cost or 0)}/h); "
        f"a full re-plan of M ({full_s:.1f} s) {format_usd(full_cost)}/h, "
        f"moving {full_diff.moved_total if full_diff else '?'} replicas; "
        f"fast / full = {ratio:.4f}"
        if ratio
        else "cost: no fast re-plan"
    )
    return {
        "preempted": len(taken),
        "spot_running": spot_running,
        "replicas_lost": sum(lost.values()),
        "seconds": elapsed,
        "replan": replan,
        "replicas_moved": moved,
        "cost_before": before.cost_micro_usd_per_hour,
        "cost_after": after.cost_micro_usd_per_hour,
        "fast_plan_cost": fast_cost,
        "full_plan_cost": full_cost,
        "full_plan_moved": full_diff.moved_total if full_diff else None,
        "full_plan_seconds": full_s,
        "duplicates": duplicates,
        "orphans": orphans,
    }


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="crash runs (default 20)")
    parser.add_argument("--time-limit", type=float, default=30.0, help="solve time of M's plans (default 30)")
    parser.add_argument(
        "--replan-time-limit", type=float, default=10.0, help="the fast re-plan's (default 10)"
    )
    parser.add_argument("--demand-factor", type=int, default=16, help="M's demand multiplied for throughput")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--workdir", type=Path, help="keep the databases here (default: a temporary directory)"
    )
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpuplan-apply-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    say(
        f"apply benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load {load()}"
    )
    figures: dict[str, Any] = {"load_start": os.getloadavg()}

    # M as it is: planned once; the approved plan is the crash runs' template, the applied fleet the
    # preemption's starting point
    say(f"\n=== M: plan and apply (load {load()}) ===")
    database, _scenario = set_up(work / "m.sqlite")
    config = settings()
    plan_id, seconds = plan(database, args.time_limit, trigger="manual")
    approve(database, plan_id, config)
    database.dispose()
    approved = work / "m-approved.sqlite"
    shutil.copyfile(work / "m.sqlite", approved)
    database = Database.from_url(f"sqlite:///{work / 'm.sqlite'}")
    report, applied_s = timed_apply(database, plan_id, config)
    with database.transaction() as session:
        view = fleet_view(session)
    database.dispose()
    say(
        f"plan {plan_id} ({seconds:.1f} s): applied {len(report.outcomes)} actions ({kinds(report)}) in "
        f"{applied_s:.1f} s = {len(report.outcomes) / applied_s:.1f} actions/s, {report.status.value}; "
        f"{view.instances} instances, {format_usd(view.cost_micro_usd_per_hour)}/h"
    )
    figures["m_apply"] = {"actions": len(report.outcomes), "seconds": applied_s, "instances": view.instances}

    figures["throughput"] = throughput(work, args.time_limit, args.demand_factor)
    figures["crash"] = crashes(approved, work, plan_id, args.seeds)
    figures["preemption"] = preemption(work / "m.sqlite", work, args.time_limit, args.replan_time_limit)
    figures["load_end"] = os.getloadavg()
    say(f"\ndone, load {load()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
