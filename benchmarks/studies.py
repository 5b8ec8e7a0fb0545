"""Studies benchmark: a what-if sweep on three runners and the commitment planner (docs/planners.md).

    .venv/bin/python benchmarks/studies.py                      # 50-point sweep + commitment planner
    .venv/bin/python benchmarks/studies.py --points 10 --solve-time 1 --commitment-time 20   # smoke run
    .venv/bin/python benchmarks/studies.py --deterministic      # sweep solves in deterministic mode

1. **Sweep**: ``--points`` what-if variants of the sample fleet (price shocks by provider and GPU type,
   demand growth, spot caps, lost regions), solved on the local process pool with 1 and with 2
   workers and on a two-worker ``distributed.LocalCluster`` (two processes, one thread each). Printed:
   wall time per runner, the solves' own mean time, the overhead per task (wall x workers / points -
   mean solve time: process start, shipping the problem and the results, scheduling), and whether
   the three runners returned the same plans. By default each solve is limited to ``--solve-time``
   seconds (not deterministic: runners may then differ in the plans found, and the check says so);
   ``--deterministic`` uses the solver's deterministic mode (about 26 s per solve of the sample fleet on
   2 cores, so 50 points take about 45 minutes on the three runners).
2. **Commitment planner**: the sample fleet with a generated week of hourly demand (each source's
   busy hour the fleet's demand, trough 35% at night, weekends 70%), reserved offers assumed at 35%
   (1 y) and 55% (3 y) off every on-demand offer (the shipped catalog has no reserved prices): time,
   proven bound, gap, savings against all on-demand, and the model's size.

Figures are printed with the load average: the machine has 2 cores shared with other work.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import datetime as dt
import os
import platform
import time

from distributed import Client, LocalCluster

from scheduler.services.scenarios import sample_scenario
from scheduler.services.studies import commitment_study, run_variants, study_params
from scheduler.services.sweeps import DaskRunner, LocalPoolRunner, Runner
from solver.commitments.index import CommitmentParams
from solver.commitments.profile import weekly_profile
from solver.commitments.reserved import ReservedPriceAssumption, with_assumed_reserved
from solver.domain import GpuType
from solver.problem import Problem
from solver.whatif import (
    Change,
    DemandGrowth,
    PriceShock,
    RegionLost,
    SpotCapChange,
    WhatIf,
)

RESERVED_ASSUMPTIONS = (
    ReservedPriceAssumption(term="1y", discount=0.35),
    ReservedPriceAssumption(term="3y", discount=0.55),
)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def variants(count: int) -> list[WhatIf]:
    """``count`` distinct what-if variants of the sample fleet, cycling through kinds of change."""
    kinds: list[tuple[str, list[Change]]] = []
    for provider in ("aws", "gcp", "azure", "lambda", "runpod", "nebius"):
        for factor in (0.8, 1.25):
            kinds.append((f"{provider} x{factor}", [PriceShock(factor=factor, providers=(provider,))]))
    for gpu in (GpuType.H100, GpuType.H200, GpuType.MI300X):
        for factor in (0.7, 1.3):
            kinds.append((f"{gpu.value} x{factor}", [PriceShock(factor=factor, gpu_types=(gpu,))]))
    for factor in (0.8, 0.9, 1.1, 1.2, 1.3, 1.5):
        kinds.append((f"demand x{factor}", [DemandGrowth(factor=factor)]))
    for cap in (0.0, 0.1, 0.2, 0.4, 0.6):
        kinds.append((f"spot cap {cap}", [SpotCapChange(max_spot_share=cap)]))
    for region in ("aws/us-east-1", "aws/eu-central-1", "gcp/us-central1", "azure/eastus"):
        kinds.append((f"lost {region}", [RegionLost(regions=(region,))]))
    out = []
    for i in range(count):
        name, changes = kinds[i % len(kinds)]
        if i >= len(kinds):  # a second lap adds demand growth so that every point differs
            changes = [*changes, DemandGrowth(factor=1.0 + 0.05 * (i // len(kinds)))]
            name += f" + demand x{1.0 + 0.05 * (i // len(kinds)):g}"
        out.append(WhatIf(name=name, changes=tuple(changes)))
    return out


def sweep(problem: Problem, points: int, solve_time: float, deterministic: bool) -> None:
    base = study_params(time_limit_s=solve_time).model_copy(update={"deterministic": deterministic})
    whatifs = variants(points)
    print(f"\n== what-if sweep: {points} variants of the sample fleet, solves {solve_time:g} s each"
          f"{' (deterministic)' if deterministic else ''} ==")  # fmt: skip
    outcomes: dict[str, list[tuple[int | None, str]]] = {}

    def run(label: str, runner: Runner, workers: int) -> None:
        print(f"[{label}] start, load average {load()}", flush=True)
        started = time.perf_counter()
        results = run_variants(problem, whatifs, base, runner, progress=False)
        wall = time.perf_counter() - started
        solve_mean = sum(r.result.wall_time_s for r in results) / len(results)
        overhead = wall * workers / len(results) - solve_mean
        plans = sum(1 for r in results if r.result.plan is not None)
        print(
            f"[{label}] wall {wall:.1f} s for {len(results)} solves ({plans} with a plan); mean solve "
            f"{solve_mean:.2f} s; overhead per task {overhead:.2f} s (wall x {workers} workers / points - "
            f"mean solve); load average {load()}",
            flush=True,
        )
        outcomes[label] = [(r.result.cost_micro_usd_per_hour, r.result.status.value) for r in results]

    run("local pool, 1 worker", LocalPoolRunner(1), 1)
    run("local pool, 2 workers", LocalPoolRunner(2), 2)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        run("Dask LocalCluster, 2 workers", DaskRunner(client), 2)
    labels = list(outcomes)
    same = all(outcomes[label] == outcomes[labels[0]] for label in labels)
    differing = sum(1 for i in range(points) if len({outcomes[label][i] for label in labels}) > 1)
    print(f"same plans on every runner: {'yes' if same else f'no ({differing} of {points} points differ)'}")
    if not deterministic:
        print(
            "  (time-limited solves may find different plans on a loaded machine; --deterministic compares)"
        )


def commitments(problem: Problem, time_limit: float) -> None:
    problem, assumed = with_assumed_reserved(problem, RESERVED_ASSUMPTIONS)
    profile = weekly_profile(problem)
    print(f"\n== commitment planner: sample fleet, {profile.hours} h of hourly demand, {len(assumed)} "
          f"assumed reserved offers (1 y -35%, 3 y -55%), limit {time_limit:g} s ==")  # fmt: skip
    print(f"start, load average {load()}", flush=True)
    params = CommitmentParams(time_limit_s=time_limit)
    started = time.perf_counter()
    study = commitment_study(
        problem, profile, params, LocalPoolRunner(2), drops=(0.1, 0.2, 0.3), progress=False
    )
    wall = time.perf_counter() - started
    plan, on_demand = study.plan, study.on_demand
    for label, result in (("plan", plan), ("all on demand", on_demand)):
        cost = result.cost_micro_usd_per_hour
        bound = result.lower_bound_micro_usd
        print(
            f"{label}: {result.status.value}, {result.wall_time_s:.1f} s, "
            f"${(cost or 0) / 1e6:,.2f}/h average, bound ${(bound or 0) / 1e6 / result.hours:,.2f}/h, "
            f"gap {result.gap if result.gap is not None else float('nan'):.2%}; "
            f"{result.stats.get('variables')} variables ({result.stats.get('integer_variables')} integer), "
            f"{result.stats.get('constraints')} constraints, build {result.stats.get('build_s')} s, "
            f"MIP {result.stats.get('mip_s')} s"
        )
    if plan.cost_micro_usd and on_demand.cost_micro_usd:
        saving = 1 - plan.cost_micro_usd / on_demand.cost_micro_usd
        yearly = (on_demand.cost_micro_usd - plan.cost_micro_usd) / plan.hours * 8760 / 1e6
        print(f"savings against all on-demand: {saving:.1%} (${yearly:,.0f} a year)")
    committed = [d for d in plan.commitments if not d.existing]
    print(f"commitments: {len(committed)} offers, {sum(d.gpus for d in committed)} GPUs; utilisation "
          f"{', '.join(f'{d.utilisation:.0%}' for d in committed[:8])}")  # fmt: skip
    for risk in study.risks:
        kept, od = risk.committed, risk.on_demand
        if kept.cost_micro_usd and od.cost_micro_usd and kept.cost_micro_usd_per_hour is not None:
            saving = 1 - kept.cost_micro_usd / od.cost_micro_usd
            usd = kept.cost_micro_usd_per_hour / 1e6
            print(
                f"demand -{risk.drop:.0%}: ${usd:,.2f}/h with the commitments, {saving:.1%} below on-demand"
            )
    print(f"whole study (plan, references, risks on a 2-worker pool): {wall:.1f} s; load {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--solve-time", type=float, default=2.0)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--commitment-time", type=float, default=60.0)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-commitments", action="store_true")
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    now = dt.datetime.now(dt.UTC)
    print(f"studies benchmark, {now:%Y-%m-%d %H:%M} UTC, {machine}, {os.cpu_count()} cores, load {load()}")
    problem, _, _ = sample_scenario()
    if not args.skip_sweep:
        sweep(problem, args.points, args.solve_time, args.deterministic)
    if not args.skip_commitments:
        commitments(problem, args.commitment_time)


if __name__ == "__main__":
    main()
