"""Tuning is data: ``SolverTuning`` on ``SolveParams``, checked at construction; the solver reads no
environment."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from solver import solve as solve_module
from solver.index import build_index
from solver.mip import engine
from solver.problem import Problem, SolveParams
from solver.solve import SearchState, _policy_costs_fit
from solver.tuning import LpBackend, MipBackend, SolverTuning
from tests.solver.helpers import DUB, FRA, TinyProblem, describe, solve_tiny, usd

SOLVER_DIR = Path(__file__).resolve().parents[2] / "solver"


def test_the_solver_reads_no_environment() -> None:
    readers = re.compile(r"os\.environ|os\.getenv|getenv\(")
    found = [
        f"{path.relative_to(SOLVER_DIR)}:{number}"
        for path in sorted(SOLVER_DIR.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if readers.search(line)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lp_share", 1.5),
        ("bound_share", -0.1),
        ("lns_step_s", 0.0),
        ("lp_max_rounds", -1),
        ("lns_focus_share_max", 1.2),
        ("lns_focus_window", 0),
    ],
)
def test_bad_tuning_is_refused_with_its_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SolverTuning(**{field: value})


def test_focus_share_bounds_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="lns_focus_share_min must not be above lns_focus_share_max"):
        SolverTuning(lns_focus_share_min=0.5, lns_focus_share_max=0.2)
    assert SolverTuning(lns_focus_share_min=0.3, lns_focus_share_max=0.3).lns_focus_share_max == 0.3


def test_engines_may_be_named_and_unknown_ones_are_refused() -> None:
    tuning = SolverTuning(global_mip="GSCIP", lp="PDLP")  # type: ignore[arg-type]
    assert tuning.global_mip is MipBackend.GSCIP and tuning.lp is LpBackend.PDLP
    assert engine(tuning.global_mip).name == "GSCIP"
    unknown = "SolverTuning.whole_mip must be one of GSCIP, HIGHS, CP_SAT, got 'GUROBI'"
    with pytest.raises(ValueError, match=re.escape(unknown)):
        SolverTuning(whole_mip="GUROBI")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("SolverTuning.lp must be one of GLOP, PDLP")):
        SolverTuning(lp="HIGHS")  # type: ignore[arg-type]


def test_engines_name_mathopt_solvers() -> None:
    assert {engine(b).name for b in MipBackend} == {"GSCIP", "HIGHS", "CP_SAT"}
    assert {engine(b).name for b in LpBackend} == {"GLOP", "PDLP"}


@pytest.mark.parametrize(
    "tuning",
    [
        SolverTuning(),
        SolverTuning(subproblem_mip=MipBackend.HIGHS, global_mip=MipBackend.GSCIP, lp=LpBackend.PDLP),
        SolverTuning(exact_max_replica_vars=0, global_mip_max_slots=0, lns_max_models=1),
    ],
    ids=["defaults", "other-engines", "no-exact-mip"],
)
def test_other_tunings_find_the_same_optimum(tuning: SolverTuning) -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25}, residency=["EU"])
    tiny.offer(FRA, 2, availability=1)
    tiny.offer(DUB, 3)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 2000)  # two replicas: Frankfurt's one ($2) and one in Dublin ($3)
    problem = tiny.build()
    params = SolveParams(time_limit_s=5, seed=0, deterministic=True, explain=False, tuning=tuning)
    result = solve_tiny(problem, params)
    assert result.cost_micro_usd_per_hour == usd(5)
    assert result.params.tuning == tuning


def _two_models_sharing_scarce_offers() -> Problem:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25}, residency=["EU"])
    tiny.offer(FRA, 2, availability=1)
    tiny.offer(DUB, 3, availability=2)
    tiny.offer(DUB, 5, instance_type="h100-1x-large")
    tiny.model("llama")
    tiny.model("mistral")
    tiny.demand("llama", "berlin", 1500)  # fractional in the LP: the subproblems have work to do
    tiny.demand("mistral", "berlin", 700)
    return tiny.build()


def test_the_bound_running_beside_the_search_gives_the_same_optimum_and_bound() -> None:
    # Forced onto the path large problems take: the subproblems on two workers while the search runs.
    problem = _two_models_sharing_scarce_offers()
    beside = SolverTuning(exact_max_replica_vars=0, global_mip_max_slots=0)
    before = SolverTuning(exact_max_replica_vars=0, global_mip_max_slots=0, overlap_bound=False)
    results = {}
    for name, tuning in (("beside", beside), ("before", before)):
        params = SolveParams(time_limit_s=10, seed=0, workers=2, explain=False, tuning=tuning)
        results[name] = solve_tiny(problem, params)
    for result in results.values():
        assert result.plan is not None and result.violations == (), describe(result)
        # Three replicas: Frankfurt's one ($2), Dublin's two at $3.
        assert result.cost_micro_usd_per_hour == usd(8)
        assert result.stats["subproblems"] == "2 solved of 2 started, 2 models"
        assert result.stats["bound_from"] == "per-model subproblems"
    # The same subproblems at the same prices: the same bound, whether the search waited for it or not.
    bounds = {name: result.lower_bound_micro_usd_per_hour for name, result in results.items()}
    assert bounds["beside"] == bounds["before"]
    assert 0 < bounds["beside"] <= usd(8)


def test_time_for_policy_costs_that_cannot_fit_goes_to_the_search() -> None:
    # Each policy's re-solves share the explanation time and need policy_min_step_s per model: with two
    # models that fits in 20% of 30 s, and not when each model must have more than the time kept.
    problem = _two_models_sharing_scarce_offers()
    params = SolveParams(time_limit_s=30, seed=0, workers=2, explain=True)
    index = build_index(problem, params)

    def state_for(min_step_s: float) -> SearchState:
        tuned = params.model_copy(update={"tuning": SolverTuning(policy_min_step_s=min_step_s)})
        state = SearchState(index=index, params=tuned, started=time.perf_counter())
        state.policy_costs_fit = _policy_costs_fit(state)
        return state

    fits, too_short = state_for(0.1), state_for(10.0)
    assert fits.policy_costs_fit and not too_short.policy_costs_fit
    assert fits.explain_reserve_s == pytest.approx(0.2 * 30)  # explain_share
    assert too_short.explain_reserve_s == pytest.approx(0.08 * 30)  # explain_plan_share
    assert too_short.search_limit_s == pytest.approx(fits.search_limit_s + 0.12 * 30)
    unexplained = SearchState(index=index, params=params.model_copy(update={"explain": False}), started=0.0)
    assert unexplained.explain_reserve_s == 0.0


def test_above_overlap_max_models_the_search_waits_for_the_subproblems(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problem = _two_models_sharing_scarce_offers()
    collected: list[int] = []
    original = solve_module._collect

    def counting(*args: object, **kwargs: object) -> None:
        collected.append(1)
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(solve_module, "_collect", counting)
    for most, beside in ((2, True), (1, False)):
        collected.clear()
        tuning = SolverTuning(exact_max_replica_vars=0, overlap_max_models=most)
        result = solve_tiny(
            problem, SolveParams(time_limit_s=10, seed=0, workers=2, explain=False, tuning=tuning)
        )
        assert result.cost_micro_usd_per_hour == usd(8)
        assert bool(collected) is beside
