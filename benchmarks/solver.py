"""Solver benchmark: quality, speed, scaling and rebalancing stability (docs/benchmarks.md).

    .venv/bin/python benchmarks/solver.py --all                  # everything (about 45 min on 2 cores)
    .venv/bin/python benchmarks/solver.py --sizes S,M            # some sizes only
    .venv/bin/python benchmarks/solver.py --curve --stability    # scaling curve and stability only
    .venv/bin/python benchmarks/solver.py --sizes S --time-limit-scale 0.2   # a quick smoke run

For each size (scenarios of ``benchmarks.scenarios``) it runs ``solver.solve.solve`` at the size's time
limit (S 5 s, M 30 s, M-dense 30 s, L 120 s, XL 300 s; S again at 60 s, the default limit, and M at 120
s) and prints cost per hour, proven bound, gap, the solver's own LP relaxation, plan / best bound, wall
time, peak memory, the independent checker's result, and the cost ratio against baselines (a)
single-cloud on-demand, (b) per-model greedy, (c) the direct HiGHS MIP at the same limit (and at 300 s
on M), and (d) the LP bound, with the targets of docs/benchmarks.md next to each figure, MET or NOT MET.
The scaling curve prints plan / LP and the gap at each point.

Every run happens in a child process of its own (the solve; (a) and (b); (c); (d)), so that peak memory
is per run and a crash, an exception or a blown time budget in one is printed and the rest goes on.
Peak memory is the child's own peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
taken right after the solve; it includes the interpreter, the catalog and the scenario, whose share is
printed as the baseline RSS before the solve) and that of any worker processes the solver forked
(``RUSAGE_CHILDREN``: the largest one).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: this file's folder would shadow the ``solver`` package with this module.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import datetime as dt
import json
import os
import platform
import resource
import signal
import subprocess
import time
import traceback
from collections import defaultdict
from typing import Any

from benchmarks import scenarios
from solver import baselines
from solver.costing import plan_cost, replicas_moved
from solver.domain import Plan, PurchaseOption
from solver.problem import Problem, SolveParams
from solver.solve import solve
from solver.validate import validate

TIME_LIMITS_S: dict[str, float] = {"S": 5.0, "M": 30.0, "M-dense": 30.0, "L": 120.0, "XL": 300.0}
LONG_LIMITS_S: dict[str, float] = {"S": 60.0, "M": 120.0}
"""A second solve at a longer limit (S: the solver's default limit, where the whole MIP beside the search
runs; M: the 2% gap target at 120 s)."""
DIRECT_MIP_LONG_S = 300.0
"""The direct MIP's long run on M (the M target compares with it)."""
CURVE_POINTS: tuple[int, ...] = (10, 25, 50, 100, 200, 400)
CURVE_TIME_LIMITS_S: dict[int, float] = {10: 5.0, 25: 15.0, 50: 30.0, 100: 60.0, 200: 120.0, 400: 240.0}
LP_TIME_LIMIT_S = 300.0
SOLVE_SEED = 0
STABILITY_SIZE = "M"
PRICE_NOISE_SEED = 7
PRICE_NOISE = 0.02
SHOCK_FACTOR = 4.0
SLACK_S = 180.0
"""Extra seconds a child may take beyond its time limits before it is stopped (model building, the
checker, the scenario)."""

TARGETS: dict[str, dict[str, float]] = {
    "S": {"gap": 0.001, "time": 5.0},
    "M": {"gap": 0.03, "time": 30.0, "vs_bound": 1.05, "vs_direct_long": 1.0},
    "M-dense": {"time": 30.0, "vs_bound": 1.05},
    "L": {"gap": 0.05, "time": 120.0, "vs_direct": 0.98},
    "XL": {"time": 300.0, "vs_b": 0.9},
}
LONG_TARGETS: dict[str, dict[str, float]] = {"S": {"time": 60.0}, "M": {"gap": 0.02, "time": 120.0}}
RATIO_A = 0.5
RATIO_B = 0.65
STABILITY_MOVED = 0.05
STABILITY_COST = 1.01

RESULT_PREFIX = "RESULT "


# ============================================================================================ child


def _peak_mib() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_mib": round(own, 1), "workers_mib": round(workers, 1)}


def _scenario(kind: str, name: str) -> scenarios.Scenario:
    if kind == "size":
        return scenarios.size(name)
    return scenarios.scaled(int(name))


def _describe(scenario: scenarios.Scenario) -> dict[str, Any]:
    return {
        "name": scenario.name,
        "seed": scenario.seed,
        "models": len(scenario.models),
        "sources": len(scenario.sources),
        "pairs": len(scenario.demand),
        "tokens_per_s": sum(d.tokens_per_s for d in scenario.demand),
        "gpu_need": round(scenario.gpu_need),
        "capped_offers": sum(1 for v in scenario.availability.values() if v > 0),
    }


def _solve_record(problem: Problem, time_limit_s: float) -> dict[str, Any]:
    result = solve(problem, SolveParams(time_limit_s=time_limit_s, seed=SOLVE_SEED))
    memory = _peak_mib()
    record: dict[str, Any] = {
        "status": result.status.value,
        "cost": result.cost_micro_usd_per_hour,
        "bound": result.lower_bound_micro_usd_per_hour,
        "gap": result.gap,
        "wall_s": round(result.wall_time_s, 2),
        "time_limit_s": time_limit_s,
        "peak": memory,
        "stats": {k: v for k, v in result.stats.items() if isinstance(v, (int, float, str))},
    }
    if result.plan is not None:
        violations = validate(problem, result.plan)
        record["checker"] = [v.message for v in violations]
        record["gpus"] = _gpus(problem, result.plan)
    else:
        record["checker"] = None
        record["violations"] = [v.message for v in result.violations]
    return record


def _gpus(problem: Problem, plan: Plan) -> dict[str, int]:
    offers = {offer.key: offer for offer in problem.offers}
    out = {"total": 0, "spot": 0, "hyperscaler_on_demand": 0}
    for placement in plan.placements:
        offer = offers[placement.offer_key]
        gpus = placement.instances * offer.gpus_per_instance
        out["total"] += gpus
        if offer.purchase_option is PurchaseOption.SPOT:
            out["spot"] += gpus
        elif problem.provider_kinds.get(offer.provider) == "hyperscaler":
            out["hyperscaler_on_demand"] += gpus
    return out


def _baseline_record(result: baselines.BaselineResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "status": result.status.value,
        "cost": result.cost_micro_usd_per_hour,
        "bound": result.lower_bound_micro_usd_per_hour,
        "wall_s": round(result.wall_time_s, 2),
        "note": result.note,
        "violations": [v.message for v in result.violations][:20],
        "violation_count": len(result.violations),
        "stats": {k: v for k, v in result.stats.items() if isinstance(v, (int, float, str))},
    }


def _guarded(function: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = function(*args, **kwargs)
        return result
    except Exception as exc:  # the benchmark reports a failing run and goes on
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}


def child(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    scenario = _scenario(args.kind, args.name)
    problem = scenario.problem()
    out: dict[str, Any] = {
        "scenario": _describe(scenario),
        "generate_s": round(time.perf_counter() - started, 2),
    }
    out["rss_before_mib"] = _peak_mib()["self_mib"]
    if args.task == "solve":
        out["solve"] = _guarded(_solve_record, problem, args.time_limit)
    elif args.task == "greedy":
        out["a"] = _guarded(lambda: _baseline_record(baselines.single_cloud_on_demand(problem)))
        out["b"] = _guarded(lambda: _baseline_record(baselines.greedy_per_model(problem)))
    elif args.task == "direct":
        out["c"] = _guarded(lambda: _baseline_record(baselines.direct_mip(problem, args.time_limit)))
    elif args.task == "lp":
        out["d"] = _guarded(
            lambda: _baseline_record(baselines.lp_bound(problem, time_limit_s=args.time_limit))
        )
    elif args.task == "stability":
        out["stability"] = _guarded(_stability, problem, args.time_limit)
    out["peak"] = _peak_mib()
    return out


# --------------------------------------------------------------------------------------- stability


def _stability(problem: Problem, time_limit_s: float) -> dict[str, Any]:
    params = SolveParams(time_limit_s=time_limit_s, seed=SOLVE_SEED)
    first = solve(problem, params)
    if first.plan is None:
        return {"error": f"first solve returned no plan ({first.status.value})"}
    plan0 = first.plan
    out: dict[str, Any] = {
        "first": {"status": first.status.value, "cost": first.cost_micro_usd_per_hour, "gap": first.gap},
        "penalty_micro_usd": problem.policy.churn.penalty_micro_usd_per_replica_move,
    }
    noisy = scenarios.perturb_prices(problem, seed=PRICE_NOISE_SEED, amplitude=PRICE_NOISE)
    with_fleet = noisy.model_copy(update={"current_fleet": plan0})
    kept = solve(with_fleet, params)
    free = solve(noisy, params)
    out["noise"] = {
        "with_fleet": _rebalance_record(with_fleet, kept, plan0),
        "unconstrained": _rebalance_record(with_fleet, free, plan0),
    }
    # Shocks: spot x4 in the region with the most spot GPUs of the first plan; the loss of the region
    # with the most GPUs of the first plan.
    offers = {offer.key: offer for offer in problem.offers}
    spot_gpus: dict[str, int] = defaultdict(int)
    all_gpus: dict[str, int] = defaultdict(int)
    for placement in plan0.placements:
        offer = offers[placement.offer_key]
        gpus = placement.instances * offer.gpus_per_instance
        all_gpus[offer.region_key] += gpus
        if offer.purchase_option is PurchaseOption.SPOT:
            spot_gpus[offer.region_key] += gpus
    shocks: list[tuple[str, Problem]] = []
    if spot_gpus:
        region = max(sorted(spot_gpus), key=lambda r: spot_gpus[r])
        shocks.append(
            (f"spot prices x{SHOCK_FACTOR:g} in {region}", scenarios.spot_price_shock(problem, region))
        )
    region = max(sorted(all_gpus), key=lambda r: all_gpus[r])
    shocks.append((f"region {region} lost", scenarios.lose_region(problem, region)))
    out["shocks"] = []
    for label, shocked_prices in shocks:
        shocked = shocked_prices.model_copy(update={"current_fleet": plan0})
        result = solve(shocked, params)
        record = _rebalance_record(shocked, result, plan0)
        record["label"] = label
        record["diff"] = _diff(problem, plan0, result.plan) if result.plan is not None else []
        out["shocks"].append(record)
    return out


def _rebalance_record(problem: Problem, result: Any, before: Plan) -> dict[str, Any]:
    record: dict[str, Any] = {"status": result.status.value, "wall_s": round(result.wall_time_s, 2)}
    if result.plan is None:
        return record
    moved, total = replicas_moved(problem, result.plan)
    record.update(
        {
            "cost": plan_cost(problem, result.plan),
            "gap": result.gap,
            "moved": moved,
            "replicas_before": total,
            "checker": [v.message for v in validate(problem, result.plan)],
            "cost_before_at_new_prices": plan_cost(problem, before),
        }
    )
    return record


def _diff(problem: Problem, before: Plan, after: Plan) -> list[str]:
    """Offers whose instances or replicas changed, largest changes first."""
    offers = {offer.key: offer for offer in problem.offers}
    old = {p.offer_key: p for p in before.placements}
    new = {p.offer_key: p for p in after.placements}
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        ra = {c.model: c.replicas for c in a.replicas} if a else {}
        rb = {c.model: c.replicas for c in b.replicas} if b else {}
        ia, ib = (a.instances if a else 0), (b.instances if b else 0)
        if ra == rb and ia == ib:
            continue
        changes = ", ".join(
            f"{m} {ra.get(m, 0)}->{rb.get(m, 0)}"
            for m in sorted(set(ra) | set(rb))
            if ra.get(m, 0) != rb.get(m, 0)
        )
        gpus = offers[key].gpus_per_instance
        lines.append(
            (
                abs(ib - ia) * gpus,
                f"{key}: instances {ia}->{ib}" + (f"; replicas {changes}" if changes else ""),
            )
        )
    lines.sort(key=lambda item: (-item[0], item[1]))
    return [text for _, text in lines]


# =========================================================================================== parent


def run_child(task: str, kind: str, name: str, time_limit_s: float, budget_s: float) -> dict[str, Any]:
    """Run one task in a child process; its result, or an error record."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        task,
        "--kind",
        kind,
        "--name",
        name,
        "--time-limit",
        str(time_limit_s),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"error": f"stopped after {budget_s:.0f} s (time limit {time_limit_s:g} s)"}
    elapsed = time.perf_counter() - started
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            record: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            record["child_wall_s"] = round(elapsed, 1)
            return record
    tail = "\n".join((stderr or "").strip().splitlines()[-6:])
    return {"error": f"child exited with {process.returncode} and no result: {tail}"}


def _usd(micro: int | None) -> str:
    return "-" if micro is None else f"${micro / 1e6:,.2f}/h"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def _ratio(cost: int | None, other: int | None) -> float | None:
    if cost is None or other is None or other <= 0:
        return None
    return cost / other


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def _error(record: dict[str, Any] | None) -> str | None:
    if record is None:
        return "not run"
    return record.get("error")


def _report_solver(
    name: str, record: dict[str, Any], solve_run: dict[str, Any], targets: dict[str, float], scale: float
) -> list[tuple[str, str, bool | None]]:
    """Print the solver's own figures; return (size, target, met) for the closing summary."""
    summary: list[tuple[str, str, bool | None]] = []
    cost, bound, gap = record["cost"], record["bound"], record["gap"]
    peak = record["peak"]
    print(f"solver status      {record['status']}")
    print(f"cost               {_usd(cost)}")
    print(f"proven bound       {_usd(bound)}")
    gap_text = "-" if gap is None else f"{gap:.3%}"
    if "gap" in targets:
        ok = gap is not None and gap <= targets["gap"] + 1e-12
        print(f"gap                {gap_text}   target <= {targets['gap']:.1%}: {_verdict(ok)}")
        summary.append((name, f"gap <= {targets['gap']:.1%} ({gap_text})", ok))
    else:
        print(f"gap                {gap_text}")
    time_target = targets["time"] * scale
    time_ok = record["wall_s"] <= time_target and cost is not None
    print(f"wall time          {record['wall_s']:.2f} s   target <= {time_target:g} s: {_verdict(time_ok)}")
    summary.append((name, f"plan in <= {time_target:g} s ({record['wall_s']:.1f} s)", time_ok))
    print(
        f"peak memory        {peak['self_mib']:,.0f} MiB (solve process; "
        f"{solve_run.get('rss_before_mib', 0):,.0f} MiB before the solve), "
        f"forked workers {peak['workers_mib']:,.0f} MiB"
    )
    checker = record.get("checker")
    checker_ok = checker is not None and not checker
    checker_text = (
        "no plan" if checker is None else ("passes" if not checker else f"{len(checker)} violations")
    )
    print(f"checker            {checker_text}: {_verdict(checker_ok)}")
    summary.append((name, "plan passes the checker", checker_ok))
    if record.get("gpus"):
        g = record["gpus"]
        print(
            f"GPUs               {g['total']:,} ({g['spot']:,} spot, "
            f"{g['hyperscaler_on_demand']:,} hyperscaler on-demand)"
        )
    return summary


def _cheapest_checked_plan(
    runs: dict[str, dict[str, Any]], solver_record: dict[str, Any] | None
) -> float | None:
    """The lowest cost of a plan of this size that passes the checker (solver or baseline)."""
    costs = []
    if solver_record and "error" not in solver_record and solver_record.get("checker") == []:
        costs.append(solver_record.get("cost"))
    for key, inner in (("greedy", "a"), ("greedy", "b"), ("direct", "c"), ("direct_long", "c")):
        held = runs.get(key, {}).get(inner)
        if isinstance(held, dict) and held.get("violation_count") == 0:
            costs.append(held.get("cost"))
    return min((c for c in costs if c is not None), default=None)


def _contradicted(bound: float | None, cheapest: float | None) -> bool:
    """A lower bound above the cost of a checked plan cannot be a valid bound."""
    return bound is not None and cheapest is not None and bound > cheapest * (1 + 1e-9) + 1e-6


def report_size(
    name: str, runs: dict[str, dict[str, Any]], scale: float
) -> list[tuple[str, str, bool | None]]:
    """Print one size's figures; return (size, target, met) for the closing summary."""
    summary: list[tuple[str, str, bool | None]] = []
    limit = TIME_LIMITS_S[name] * scale
    solve_run = runs["solve"]
    print(f"\n=== {name}: time limit {limit:g} s ===")
    described = next((run["scenario"] for run in runs.values() if "scenario" in run), None)
    if described is not None:
        sc = described
        print(
            f"scenario {sc['name']} (seed {sc['seed']}): {sc['models']} models, {sc['sources']} sources, "
            f"{sc['pairs']} demand pairs, {sc['tokens_per_s']:,} tokens/s, GPU need G = {sc['gpu_need']:,}, "
            f"{sc['capped_offers']} offers with limited stock"
        )
    targets = TARGETS[name]
    record = solve_run.get("solve") if "error" not in solve_run else None
    cost = bound = None
    if record is None or "error" in record:
        message = _error(solve_run) or _error(record)
        print(f"solver: ERROR {message}")
        if record and "traceback" in record:
            print(record["traceback"])
        summary.append((name, f"solver returns a plan ({message})", False))
    else:
        cost, bound = record["cost"], record["bound"]
        summary += _report_solver(name, record, solve_run, targets, scale)
    # The best proven lower bound of this run (solver, direct MIPs, LP): no plan can cost less. A
    # bound above the cost of a plan that passes the checker is contradicted (an external solver
    # claiming too much) and is not used.
    cheapest = _cheapest_checked_plan(runs, record)
    bounds = [bound]
    for key, inner in (("direct", "c"), ("direct_long", "c"), ("lp", "d")):
        held = runs.get(key, {}).get(inner)
        if isinstance(held, dict) and held.get("bound") is not None:
            bounds.append(held["bound"])
    floor = max((b for b in bounds if b is not None and not _contradicted(b, cheapest)), default=None)
    lp_stat = record.get("stats", {}).get("lp_bound_usd_h") if record and "error" not in record else None
    if lp_stat is not None:
        stats = record["stats"] if record else {}
        print(
            f"LP relaxation      {_usd(round(lp_stat * 1e6))} in {stats.get('lp_s', 0):.2f} s, "
            f"{stats.get('lp_rounds', '?')} round(s), {stats.get('lp_cuts', 0)} failover cuts, "
            f"{stats.get('lp_size', '')}; bound from {stats.get('bound_from', '?')}"
        )
    if "vs_bound" in targets:
        over = _ratio(cost, floor)
        within = over is not None and over <= targets["vs_bound"] + 1e-12
        print(
            f"plan / best bound  {_fmt_ratio(over)} (best bound {_usd(floor)})   "
            f"target <= {targets['vs_bound']}x: {_verdict(within)}"
        )
        summary.append((name, f"plan / best bound <= {targets['vs_bound']}x ({_fmt_ratio(over)})", within))
    long_run = runs.get("long")
    if long_run is not None:
        long_limit = LONG_LIMITS_S[name] * scale
        print(f"--- {name} at {long_limit:g} s ---")
        long_record = long_run.get("solve") if "error" not in long_run else None
        if long_record is None or "error" in long_record:
            print(f"solver: ERROR {_error(long_run) or _error(long_record)}")
            summary.append((f"{name} {long_limit:g}s", "solver returns a plan", False))
        else:
            summary += _report_solver(
                f"{name} {long_limit:g}s", long_record, long_run, LONG_TARGETS[name], scale
            )
    greedy = runs.get("greedy", {})
    lines = [
        ("(a) single-cloud on-demand", greedy.get("a"), RATIO_A, greedy),
        ("(b) greedy per model", greedy.get("b"), targets.get("vs_b", RATIO_B), greedy),
    ]
    print("baselines (ratio = solver cost / baseline cost):")
    for label, base, target, holder in lines:
        problem_text = _error(holder) or _error(base)
        if problem_text:
            print(f"  {label:<30} ERROR {problem_text}")
            summary.append((name, f"cost <= {target}x {label} (error)", None))
            continue
        assert base is not None
        ratio = _ratio(cost, base["cost"]) if base["violation_count"] == 0 else None
        ok = None if ratio is None else ratio <= target
        extra = f" ({base['violation_count']} violations)" if base["violation_count"] else ""
        reachable = ""
        lowest = _ratio(floor, base["cost"])
        if lowest is not None:
            reachable = f" (no plan can be below {lowest:.3f}x" + (
                ": target out of reach)" if lowest > target else ")"
            )
        print(
            f"  {label:<30} {_usd(base['cost']):>16} {base['status']}{extra}, {base['wall_s']:.1f} s   "
            f"ratio {_fmt_ratio(ratio)}   target <= {target}x: {_verdict(ok)}{reachable}"
        )
        summary.append((name, f"cost <= {target}x {label} ({_fmt_ratio(ratio)})", ok))
    for key, label in (
        ("direct", f"(c) direct MIP, {limit:g} s"),
        ("direct_long", f"(c) direct MIP, {DIRECT_MIP_LONG_S * scale:g} s"),
    ):
        if key not in runs:
            continue
        holder = runs[key]
        base = holder.get("c")
        problem_text = _error(holder) or _error(base)
        if problem_text:
            print(f"  {label:<30} ERROR {problem_text}")
            continue
        assert base is not None
        ratio = _ratio(cost, base["cost"]) if base["violation_count"] == 0 else None
        verdict = ""
        target_key = "vs_direct" if key == "direct" else "vs_direct_long"
        if target_key in targets:
            target = targets[target_key]
            shown = _fmt_ratio(ratio)
            if base["cost"] is None:
                # The direct MIP found no plan: any validated plan beats it, but say so.
                ok = cost is not None
                verdict = f"   target <= {target}x: {_verdict(ok)} (vacuous: the direct MIP has no plan)"
                shown = "vacuous, no direct-MIP plan"
            else:
                ok = ratio is not None and ratio <= target + 1e-12
                verdict = f"   target <= {target}x: {_verdict(ok)}"
                if _contradicted(base["bound"], cheapest):
                    verdict += " (against a faulty direct-MIP run: its bound is wrong, see below)"
                    shown += ", the direct MIP's run is faulty"
            summary.append((name, f"cost <= {target}x {label} ({shown})", ok))
        base_gap = ""
        if base["cost"] and base["bound"] is not None:
            base_gap = f", its own gap {(base['cost'] - base['bound']) / base['cost']:.2%}"
        print(
            f"  {label:<30} {_usd(base['cost']):>16} {base['status']}, "
            f"bound {_usd(base['bound'])}{base_gap}, {base['wall_s']:.1f} s, "
            f"{base['stats'].get('rounds', '?')} round(s)   ratio {_fmt_ratio(ratio)}{verdict}"
        )
        if _contradicted(base["bound"], cheapest):
            assert cheapest is not None
            print(
                f"    its bound is WRONG: a plan passing the checker costs {_usd(int(cheapest))}, less than "
                f"the {_usd(base['bound'])} HiGHS claims to have proven; the bound is not used here"
            )
    lp_holder = runs.get("lp", {})
    lp = lp_holder.get("d")
    problem_text = _error(lp_holder) or _error(lp)
    if "lp" not in runs:
        print(f"  {'(d) LP relaxation':<30} not run (--no-direct-or-lp)")
    elif problem_text:
        print(f"  {'(d) LP relaxation':<30} ERROR {problem_text}")
    else:
        assert lp is not None
        over = _ratio(cost, lp["bound"])
        print(
            f"  {'(d) LP relaxation':<30} {_usd(lp['bound']):>16} bound, {lp['wall_s']:.1f} s, "
            f"{lp['stats'].get('rounds', '?')} round(s); solver cost / LP bound {_fmt_ratio(over)}; "
            f"solver bound / LP bound {_fmt_ratio(_ratio(bound, lp['bound']))}"
        )
    return summary


def report_curve(points: dict[int, dict[str, Any]], scale: float) -> None:
    print("\n=== scaling curve ===")
    print(
        f"{'models':>6} {'sources':>7} {'pairs':>6} {'limit s':>8} {'wall s':>7} {'gap':>8} {'plan/LP':>8} "
        f"{'LP s':>6} {'cost':>16} {'status':>9} {'checker':>8} {'peak MiB':>9}"
    )
    for n, run in points.items():
        record = run.get("solve") if "error" not in run else None
        limit = CURVE_TIME_LIMITS_S[n] * scale
        if record is None or "error" in record:
            print(f"{n:>6} {'':>7} {limit:>8g}  ERROR {_error(run) or _error(record)}")
            continue
        gap = "-" if record["gap"] is None else f"{record['gap']:.2%}"
        checker = (
            "-"
            if record["checker"] is None
            else ("ok" if not record["checker"] else str(len(record["checker"])))
        )
        lp = record["stats"].get("lp_bound_usd_h")
        over = _ratio(record["cost"], round(lp * 1e6) if lp else None)
        lp_s = record["stats"].get("lp_s")
        print(
            f"{n:>6} {run['scenario']['sources']:>7} {run['scenario']['pairs']:>6} {limit:>8g} "
            f"{record['wall_s']:>7.1f} {gap:>8} {_fmt_ratio(over):>8} "
            f"{'-' if lp_s is None else f'{lp_s:.1f}':>6} {_usd(record['cost']):>16} {record['status']:>9} "
            f"{checker:>8} {record['peak']['self_mib']:>9,.0f}"
        )


def report_stability(run: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    summary: list[tuple[str, str, bool | None]] = []
    print(f"\n=== rebalancing stability ({STABILITY_SIZE}) ===")
    record = run.get("stability") if "error" not in run else None
    if record is None or "error" in record:
        print(f"ERROR {_error(run) or _error(record)}")
        if record and "traceback" in record:
            print(record["traceback"])
        summary.append(("stability", "ran", False))
        return summary
    first = record["first"]
    print(f"first plan: {first['status']}, {_usd(first['cost'])}")
    kept, free = record["noise"]["with_fleet"], record["noise"]["unconstrained"]
    print(
        f"prices x uniform(1 - {PRICE_NOISE:g}, 1 + {PRICE_NOISE:g}) (seed {PRICE_NOISE_SEED}); "
        f"churn penalty {_usd(record['penalty_micro_usd']).removesuffix('/h')} per replica moved"
    )
    if "cost" not in kept or "cost" not in free:
        print(f"re-solve returned no plan: with fleet {kept['status']}, unconstrained {free['status']}")
        summary.append(("stability", "re-solves return plans", False))
        return summary
    share = kept["moved"] / kept["replicas_before"] if kept["replicas_before"] else 0.0
    free_share = free["moved"] / free["replicas_before"] if free["replicas_before"] else 0.0
    ratio = kept["cost"] / free["cost"]
    print(f"  first plan at the new prices   {_usd(kept['cost_before_at_new_prices'])}")
    print(
        f"  re-solve with current fleet    {_usd(kept['cost'])}, "
        f"{kept['moved']} of {kept['replicas_before']} replicas moved ({share:.1%})   "
        f"target <= {STABILITY_MOVED:.0%}: {_verdict(share <= STABILITY_MOVED)}; checker "
        f"{'passes' if not kept['checker'] else len(kept['checker'])}"
    )
    print(
        f"  unconstrained re-solve         {_usd(free['cost'])}, "
        f"would move {free['moved']} ({free_share:.1%})"
    )
    print(
        f"  cost vs unconstrained          {ratio:.4f}x   "
        f"target <= {STABILITY_COST}x: {_verdict(ratio <= STABILITY_COST)}"
    )
    summary.append(
        ("stability", f"<= {STABILITY_MOVED:.0%} replicas moved ({share:.1%})", share <= STABILITY_MOVED)
    )
    summary.append(
        ("stability", f"cost <= {STABILITY_COST}x unconstrained ({ratio:.4f}x)", ratio <= STABILITY_COST)
    )
    for shock in record["shocks"]:
        print(f"shock: {shock['label']}: {shock['status']}", end="")
        if "cost" not in shock:
            print(" (no plan)")
            summary.append(("stability", f"{shock['label']}: validated plan", False))
            continue
        ok = not shock["checker"]
        print(
            f", {_usd(shock['cost'])} (first plan {_usd(first['cost'])}), "
            f"{shock['moved']} of {shock['replicas_before']} replicas moved; "
            f"checker {'passes' if ok else shock['checker'][:3]}"
        )
        summary.append(("stability", f"{shock['label']}: validated plan", ok))
        diff = shock["diff"]
        for line in diff[:25]:
            print(f"    {line}")
        if len(diff) > 25:
            print(f"    ... and {len(diff) - 25} more offers changed")
    return summary


def report_targets(summary: list[tuple[str, str, bool | None]]) -> None:
    if summary:
        print("\n=== targets ===")
        for where, target, ok in summary:
            print(f"{where:<10} {target:<72} {_verdict(ok)}")


def report(everything: dict[str, Any]) -> int:
    """Print the whole report again from the raw figures of a run."""
    print(everything.get("header", "gpuplan solver benchmark"))
    scale = everything.get("scale", 1.0)
    summary: list[tuple[str, str, bool | None]] = []
    for name, runs in everything.get("sizes", {}).items():
        summary += report_size(name, runs, scale)
    if everything.get("curve"):
        report_curve({int(n): run for n, run in everything["curve"].items()}, scale)
    if everything.get("stability"):
        summary += report_stability(everything["stability"])
    report_targets(summary)
    if "finished" in everything:
        print(f"finished {everything['finished']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="", help="comma-separated sizes among S,M,M-dense,L,XL")
    parser.add_argument("--curve", action="store_true", help="scaling curve (10 to 400 models)")
    parser.add_argument("--stability", action="store_true", help="rebalancing stability on M")
    parser.add_argument("--all", action="store_true", help="every size, the curve and the stability test")
    parser.add_argument("--time-limit-scale", type=float, default=1.0, help="multiply every time limit")
    parser.add_argument("--no-direct-long", action="store_true", help="skip the 300 s direct MIP on M")
    parser.add_argument(
        "--no-direct-or-lp",
        action="store_true",
        help="skip baselines (c) and (d) (the solver's own LP is shown)",
    )
    parser.add_argument("--json", type=Path, help="also write every raw figure to this JSON file")
    parser.add_argument("--report", type=Path, help="print the report of a JSON file written by --json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--time-limit", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.task = args.child
        print(RESULT_PREFIX + json.dumps(child(args)), flush=True)
        return 0

    if args.report:
        return report(json.loads(args.report.read_text(encoding="utf-8")))
    sizes = list(TIME_LIMITS_S) if args.all else [s for s in args.sizes.split(",") if s]
    if not sizes and not args.curve and not args.stability and not args.all:
        sizes = list(TIME_LIMITS_S)
    unknown = [s for s in sizes if s not in TIME_LIMITS_S]
    if unknown:
        parser.error(f"unknown sizes: {', '.join(unknown)}")
    scale = args.time_limit_scale
    header = (
        f"gpuplan solver benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}: "
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}; time limits x{scale:g}"
    )
    print(header)
    everything: dict[str, Any] = {
        "header": header,
        "scale": scale,
        "sizes": {},
        "curve": {},
        "stability": None,
    }
    summary: list[tuple[str, str, bool | None]] = []
    for name in sizes:
        limit = TIME_LIMITS_S[name] * scale
        runs: dict[str, dict[str, Any]] = {}
        runs["solve"] = run_child("solve", "size", name, limit, limit * 2 + SLACK_S)
        if name in LONG_LIMITS_S:
            long_limit = LONG_LIMITS_S[name] * scale
            runs["long"] = run_child("solve", "size", name, long_limit, long_limit * 2 + SLACK_S)
        runs["greedy"] = run_child("greedy", "size", name, limit, 1800)
        if args.no_direct_or_lp:
            everything["sizes"][name] = runs
            summary += report_size(name, runs, scale)
            continue
        runs["direct"] = run_child("direct", "size", name, limit, limit * 2 + SLACK_S * 3)
        if name == "M" and not args.no_direct_long:
            long_limit = DIRECT_MIP_LONG_S * scale
            runs["direct_long"] = run_child("direct", "size", name, long_limit, long_limit * 2 + SLACK_S * 3)
        runs["lp"] = run_child(
            "lp", "size", name, LP_TIME_LIMIT_S * scale, LP_TIME_LIMIT_S * scale * 2 + SLACK_S * 3
        )
        everything["sizes"][name] = runs
        summary += report_size(name, runs, scale)
    if args.curve or args.all:
        points = {}
        for n in CURVE_POINTS:
            limit = CURVE_TIME_LIMITS_S[n] * scale
            points[n] = run_child("solve", "curve", str(n), limit, limit * 2 + SLACK_S)
        everything["curve"] = points
        report_curve(points, scale)
    if args.stability or args.all:
        limit = TIME_LIMITS_S[STABILITY_SIZE] * scale
        run = run_child("stability", "size", STABILITY_SIZE, limit, limit * 12 + SLACK_S * 2)
        everything["stability"] = run
        summary += report_stability(run)
    everything["finished"] = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    report_targets(summary)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"raw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
