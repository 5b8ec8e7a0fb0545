"""Engine calls a Ctrl-C can stop (solver/engine.py).

A hard random integer programme keeps HiGHS or SCIP busy past the moment the test sends itself a signal.
Without ``call_engine`` the signal's handler runs only once the engine's call has come back, and the
exception it raises is dropped on the way (see the module's docstring), so each of these tests fails
when the call is made in place."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from ortools.math_opt.python import mathopt

from solver.engine import STOP_GRACE_S, call_engine, engines_running, interruptible_solve
from solver.index import build_index
from solver.mip import PlacementMip
from solver.problem import SolveParams
from tests.solver.helpers import FRA, TinyProblem

ENGINE_LIMIT_S = 2.5
SIGNAL_AT_S = 0.3


class SignalledError(Exception):
    """What the test's signal handler raises (not KeyboardInterrupt, which would end pytest)."""


@pytest.fixture(autouse=True)
def python_handles_sigint() -> Iterator[None]:
    """Python's own SIGINT handler, as in an interactive run: a test runner started in the background
    (``cmd &``) inherits SIGINT ignored, and the engine then runs in place by design."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def stop_on_sigusr1() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SignalledError

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _hard_model(seed: int = 1) -> mathopt.Model:
    rng = random.Random(seed)
    model = mathopt.Model()
    xs = [model.add_integer_variable(lb=0, ub=10) for _ in range(300)]
    for _ in range(60):
        row = rng.sample(xs, 40)
        model.add_linear_constraint(sum(rng.randint(1, 30) * x for x in row) >= rng.randint(200, 400))
    model.minimize(sum(rng.randint(1, 50) * x for x in xs))
    return model


def _wait_for_helpers(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while engines_running() and time.monotonic() < deadline:
        time.sleep(0.01)


def _solve_with_signal(solver: mathopt.SolverType) -> float:
    """Seconds from the signal to the exception; fails if the call returned instead."""
    model = _hard_model()
    params = mathopt.SolveParameters(time_limit=dt.timedelta(seconds=ENGINE_LIMIT_S), enable_output=False)
    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGUSR1)

    timer = threading.Timer(SIGNAL_AT_S, send)
    timer.start()
    try:
        with pytest.raises(SignalledError):
            interruptible_solve(model, solver, params=params)
    finally:
        timer.cancel()
    return time.monotonic() - sent[0]


@pytest.mark.usefixtures("stop_on_sigusr1")
def test_a_signal_during_a_highs_solve_raises_at_once() -> None:
    # HiGHS ignores interrupters: the exception comes at once, long before HiGHS's own limit.
    after = _solve_with_signal(mathopt.SolverType.HIGHS)
    assert after < STOP_GRACE_S + 0.8 < ENGINE_LIMIT_S - SIGNAL_AT_S
    _wait_for_helpers(ENGINE_LIMIT_S)  # HiGHS runs on to its limit on the helper thread


@pytest.mark.usefixtures("stop_on_sigusr1")
def test_a_signal_during_a_cp_sat_solve_stops_the_engine() -> None:
    after = _solve_with_signal(mathopt.SolverType.CP_SAT)
    assert after < STOP_GRACE_S + 0.8
    # CP-SAT honours the interrupter: its helper thread has ended (or ends at once), nothing runs on.
    _wait_for_helpers(0.5)
    assert engines_running() == 0


def test_the_engine_runs_on_a_helper_thread_from_the_main_thread_only() -> None:
    seen: list[tuple[str, bool]] = []

    def call(interrupter: object) -> int:
        seen.append((threading.current_thread().name, interrupter is not None))
        return 7

    glop = mathopt.SolverType.GLOP
    assert call_engine(glop, call) == 7
    worker = threading.Thread(target=lambda: seen.append(("result", call_engine(glop, call) == 7)))
    worker.start()
    worker.join()
    assert seen[0] == ("gpuplan-engine", True)
    assert seen[1] == (worker.name, False) and seen[2] == ("result", True)
    assert engines_running() == 0


def test_only_engines_that_stop_are_given_an_interrupter() -> None:
    given: dict[str, bool] = {}
    for solver in (mathopt.SolverType.GLOP, mathopt.SolverType.HIGHS, mathopt.SolverType.GSCIP):
        call_engine(
            solver, lambda interrupter, name=solver.name: given.update({name: interrupter is not None})
        )
    assert given == {"GLOP": True, "HIGHS": False, "GSCIP": False}


def test_with_sigint_ignored_the_call_runs_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in the subproblems' worker processes, which leave Ctrl-C to their parent.
    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.SIG_IGN)
    names: list[str] = []
    call_engine(mathopt.SolverType.GLOP, lambda interrupter: names.append(threading.current_thread().name))
    assert names == [threading.current_thread().name]


def test_errors_of_the_engine_call_reach_the_caller() -> None:
    def broken(interrupter: object) -> None:
        raise ValueError("engine said no")

    with pytest.raises(ValueError, match="engine said no"):
        call_engine(mathopt.SolverType.HIGHS, broken)


def _tiny_mip() -> PlacementMip:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 1)
    tiny.model("a")
    tiny.demand("a", "berlin", 1800)
    index = build_index(tiny.build(), SolveParams(time_limit_s=5, seed=0))
    return PlacementMip(index, sorted(index.demand))


def test_a_placement_mip_solves_through_the_helper_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    mip = _tiny_mip()
    threads: list[str] = []
    original = mathopt.solve

    def spy(*args: Any, **kwargs: Any) -> mathopt.SolveResult:
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(mathopt, "solve", spy)
    solution = mip.solve(time_limit_s=5)
    assert threads == ["gpuplan-engine"]
    assert solution.objective is not None and sum(solution.replicas.values()) == 2


def test_scip_gets_no_interrupter(capfd: pytest.CaptureFixture[str]) -> None:
    # With one, gSCIP prints two error lines per call (it cannot register its interrupt event).
    solution = _tiny_mip().solve(time_limit_s=5, solver=mathopt.SolverType.GSCIP)
    assert solution.objective is not None
    captured = capfd.readouterr()
    assert "ERROR" not in captured.err and "SCIPcatchEvent" not in captured.err
