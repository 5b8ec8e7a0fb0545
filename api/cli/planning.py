"""``gpuplan solve`` (a scenario file, no database), ``gpuplan plan`` (the fleet in the database, stored
as a draft plan) and ``gpuplan schema``. The work is ``scheduler.services.solving`` and
``scheduler.services.planning.plan_fleet``; this module says what is planned, prints the plan and
writes the plan file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.app import Runtime, open_database, runtime
from api.cli.render.plan import baselines_table, plan_summary
from api.cli.status import ExitStatus
from scheduler.db.session import Database
from scheduler.services import planfile
from scheduler.services import scenarios as scenario_service
from scheduler.services.planning import PlanningSnapshot, PlanNotStoredError, plan_fleet
from scheduler.services.solving import Baselines, Solved, solve_and_compare
from solver.errors import InputError
from solver.fleetspec import fleet_json_schema
from solver.problem import Problem, SolveParams
from solver.result import SolveStatus
from solver.scenario import scenario_json_schema

MAX_SEED = 2**31 - 1
"""Seeds are 0 to 2^31 - 1 (the solvers take 32-bit seeds)."""
MIN_TIME_LIMIT_S = 0.1
MAX_TIME_LIMIT_S = 86_400.0
"""Time limits are 0.1 s to one day."""


def register(app: typer.Typer) -> None:
    app.command("solve")(solve_scenario)
    app.command("plan")(plan)
    app.command("schema")(schema)


def time_limit_option(help_text: str) -> Any:
    return typer.Option("--time-limit", min=MIN_TIME_LIMIT_S, max=MAX_TIME_LIMIT_S, help=help_text)


SEED_OPTION = typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed of the search.")
DETERMINISTIC_OPTION = typer.Option("--deterministic", help="Repeated solves return the same plan.")
NO_BASELINES_OPTION = typer.Option("--no-baselines", help="Skip the comparison with the baselines.")


def solve_scenario(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Argument(help="Scenario file (YAML or JSON; docs/formats.md), or 'sample'.")
    ],
    time_limit: Annotated[
        float | None, time_limit_option("Seconds (default: the scenario's solve.time_limit_s).")
    ] = None,
    seed: Annotated[int | None, SEED_OPTION] = None,
    deterministic: Annotated[bool, DETERMINISTIC_OPTION] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the plan file (JSON) here.")] = None,
    no_baselines: Annotated[bool, NO_BASELINES_OPTION] = False,
) -> None:
    """Plan a scenario file (no database needed) and print the plan; --out writes it as JSON."""
    rt = runtime(ctx)
    check_out(out)
    if scenario == "sample" and not Path(scenario).exists():
        problem, _, spec = scenario_service.sample_scenario()
        label = f"scheduler/data/{scenario_service.SAMPLE_SCENARIO}"
    else:
        problem, _, spec = scenario_service.load_scenario(Path(scenario))
        label = scenario
    params = spec.solve_params(time_limit_s=time_limit, seed=seed, deterministic=deterministic or None)
    rt.say(solving_line(label, problem, params))
    solved = solve_and_compare(problem, params, baselines=Baselines.NONE if no_baselines else Baselines.ALL)
    document = planfile.build_plan_file(
        problem, solved.result, scenario=label, created_at=rt.now(), baselines=solved.baselines
    )
    show_plan(rt, document, solved.notes)
    if out is not None:
        write_plan(out, document)
        rt.say(f"plan file written to {out}")
    exit_for(solved)


def plan(
    ctx: typer.Context,
    time_limit: Annotated[float, time_limit_option("Seconds.")] = SolveParams.model_fields[
        "time_limit_s"
    ].default,
    seed: Annotated[int, SEED_OPTION] = 0,
    deterministic: Annotated[bool, DETERMINISTIC_OPTION] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the plan file (JSON) here.")] = None,
    no_baselines: Annotated[bool, NO_BASELINES_OPTION] = False,
) -> None:
    """Plan the fleet in the database on its latest prices and store the plan as a draft."""
    check_out(out)
    params = SolveParams(time_limit_s=time_limit, seed=seed, deterministic=deterministic)
    baselines = Baselines.NONE if no_baselines else Baselines.ALL
    with open_database() as database:
        plan_from_database(runtime(ctx), database, params, out=out, baselines=baselines)


@dataclass
class _Kept:
    """What ``plan_from_database`` keeps of a solve before the plan is stored."""

    document: planfile.PlanFile | None = None
    solved: Solved | None = None
    file_error: InputError | None = None


def plan_from_database(
    rt: Runtime, database: Database, params: SolveParams, *, out: Path | None, baselines: Baselines
) -> int | None:
    """Plan the fleet in the database (``plan_fleet``): say what is planned, write the plan file before
    the plan is stored (so a store the database refuses loses nothing), then print the plan; the stored
    plan's id."""
    now = rt.now()
    kept = _Kept()

    def on_snapshot(snapshot: PlanningSnapshot) -> None:
        left_out = ", ".join(f"{n} {why}" for why, n in sorted(snapshot.left_out.items()))
        rt.say(f"planning from the database{f' (left out: {left_out})' if left_out else ''}")
        rt.say(solving_line("the fleet in the database", snapshot.problem, params))

    def before_store(snapshot: PlanningSnapshot, solved: Solved) -> None:
        kept.solved = solved
        kept.document = planfile.build_plan_file(
            snapshot.problem, solved.result, scenario="database", created_at=now, baselines=solved.baselines
        )
        if out is not None:
            try:
                write_plan(out, kept.document)
            except InputError as exc:  # the plan is still stored; the error is reported at the end
                kept.file_error = exc

    not_stored: PlanNotStoredError | None = None
    plan_id: int | None = None
    try:
        outcome = plan_fleet(
            database,
            params,
            now=now,
            actor="gpuplan plan",
            baselines=baselines,
            on_snapshot=on_snapshot,
            before_store=before_store,
        )
        plan_id = outcome.plan_id
        if plan_id is not None:
            rt.say(f"stored as draft plan {plan_id}")
        for older in outcome.superseded:
            rt.say(f"plan {older} is superseded by plan {plan_id}")
    except PlanNotStoredError as exc:
        not_stored = exc
    assert kept.document is not None and kept.solved is not None
    show_plan(rt, kept.document, kept.solved.notes)
    if out is not None and kept.file_error is None:
        rt.say(f"plan file written to {out}")
    if not_stored is not None:
        if kept.file_error is not None:
            rt.error(str(kept.file_error))
        raise not_stored
    if kept.file_error is not None:
        raise kept.file_error
    exit_for(kept.solved)
    return plan_id


def solving_line(label: str, problem: Problem, params: SolveParams) -> str:
    return (
        f"solving {label}: {len(problem.models)} models, {len(problem.sources)} sources, "
        f"{len(problem.demand)} demands, {len(problem.offers):,} offers in {len(problem.regions)} regions "
        f"(time limit {params.time_limit_s:g} s, seed {params.seed}, {params.workers} workers"
        f"{', deterministic' if params.deterministic else ''})"
    )


def show_plan(rt: Runtime, document: planfile.PlanFile, notes: tuple[str, ...]) -> None:
    rt.show(*plan_summary(document))
    if document.baselines:
        rt.show(baselines_table(document))
    for note in notes:
        rt.say(f"  {note}")


def check_out(path: Path | None) -> None:
    """Refuse an ``--out`` path that cannot be a file before anything is solved or stored."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"--out: {path} is a directory")
    if not path.parent.is_dir():
        raise InputError(f"--out: there is no directory {path.parent} to write {path.name} in")


def write_plan(path: Path, document: planfile.PlanFile) -> None:
    try:
        planfile.write_plan_file(path, document)
    except OSError as exc:
        raise InputError(f"cannot write the plan file {path}: {exc.strerror or exc}") from exc


def exit_for(solved: Solved) -> None:
    """Exit INFEASIBLE or NO_PLAN when the solve found no plan."""
    if solved.result.status is SolveStatus.INFEASIBLE:
        raise typer.Exit(ExitStatus.INFEASIBLE)
    if solved.result.plan is None:
        raise typer.Exit(ExitStatus.NO_PLAN)


class SchemaName(StrEnum):
    SCENARIO = "scenario"
    PLAN = "plan"
    FLEET = "fleet"


SCHEMAS: dict[SchemaName, Callable[[], dict[str, Any]]] = {
    SchemaName.SCENARIO: scenario_json_schema,
    SchemaName.PLAN: planfile.plan_json_schema,
    SchemaName.FLEET: fleet_json_schema,
}


def schema(name: Annotated[SchemaName, typer.Argument(help="Which document.")]) -> None:
    """Print the JSON Schema of a document (docs/scenario.schema.json and docs/plan.schema.json are these)."""
    sys.stdout.write(json.dumps(SCHEMAS[name](), indent=2, ensure_ascii=False) + "\n")
