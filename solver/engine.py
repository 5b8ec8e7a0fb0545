"""Calls into an optimisation engine that a Ctrl-C can stop.

Python runs a signal handler in the main thread, at the next bytecode it executes. While an engine
(HiGHS, SCIP, GLOP, ...) solves, the main thread is inside C++; the handler runs when the call comes
back, inside the Python code that turns the engine's result into objects. Part of that code is
protobuf's, which calls back into Python and drops the exception the handler raises: measured with
OR-Tools 9.15, a SIGINT one second into a 3 s HiGHS or SCIP solve is lost, no ``KeyboardInterrupt``
ever follows, and ``gpuplan solve`` ran on to its time limit.

``call_engine`` runs the engine's call on a helper thread and waits for it on the main thread, where a
Ctrl-C raises ``KeyboardInterrupt`` at once (as does any exception another signal's handler raises).
The engines in ``STOPPABLE`` (CP-SAT and GLOP, which stop within milliseconds) are then asked to stop
through MathOpt's ``SolveInterrupter``. HiGHS ignores one, and gSCIP is given none (it fails to
register its interrupt event, printing two error lines per call, and its plans on the benchmark's M
were worse with it); both run on to their own time limit on the helper thread, a daemon thread whose
result nobody reads and which does not hold the process when it exits.

Off the main thread (an API server's worker threads, the scheduler's jobs, a Dask worker), or when
SIGINT is not handled by Python (the subproblems' worker processes ignore it), the call runs in place:
no handler there could raise.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TypeVar

from ortools.math_opt.python import mathopt
from ortools.util.python.solve_interrupter import SolveInterrupter

T = TypeVar("T")

#: How long an interrupted call waits for the engine to honour its interrupter before it gives up on it.
STOP_GRACE_S = 0.5

#: Engines that stop when their interrupter fires (measured, OR-Tools 9.15). HiGHS ignores it; gSCIP fails
#: to register it (two error lines per call, worse plans on M); others are not measured.
STOPPABLE = frozenset({mathopt.SolverType.GLOP, mathopt.SolverType.CP_SAT})

_running_lock = threading.Lock()
_running: set[threading.Thread] = set()


def interruptible_solve(
    model: mathopt.Model,
    solver: mathopt.SolverType,
    *,
    params: mathopt.SolveParameters,
    model_params: mathopt.ModelSolveParameters | None = None,
) -> mathopt.SolveResult:
    """``mathopt.solve`` through ``call_engine``."""
    return call_engine(
        solver,
        lambda interrupter: mathopt.solve(
            model, solver, params=params, model_params=model_params, interrupter=interrupter
        ),
    )


def call_engine(solver: mathopt.SolverType, call: Callable[[SolveInterrupter | None], T]) -> T:
    """``call(interrupter)`` with Ctrl-C raising ``KeyboardInterrupt`` while the engine works.

    ``call`` hands the interrupter to the engine (``mathopt.solve(..., interrupter=...)``); it receives
    ``None`` when the call runs in place or ``solver`` is not in ``STOPPABLE``. Exceptions of ``call``
    are raised here as they are."""
    if threading.current_thread() is not threading.main_thread() or not callable(
        signal.getsignal(signal.SIGINT)
    ):
        return call(None)
    interrupter = SolveInterrupter() if solver in STOPPABLE else None
    done = threading.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(call(interrupter))
        except BaseException as exc:  # handed to the waiting thread, which raises it
            failure.append(exc)
        finally:
            with _running_lock:
                _running.discard(threading.current_thread())
            done.set()

    helper = threading.Thread(target=work, name="gpuplan-engine", daemon=True)
    with _running_lock:
        _running.add(helper)
    helper.start()
    try:
        # A timed wait: a Ctrl-C interrupts it on every platform.
        while not done.wait(0.2):
            pass
    except BaseException:  # KeyboardInterrupt, or whatever another signal's handler raises
        if interrupter is not None:
            interrupter.interrupt()
            done.wait(STOP_GRACE_S)
        raise
    if failure:
        raise failure[0]
    return outcome[0]


def engines_running() -> int:
    """Engine calls still running on helper threads: those a Ctrl-C gave up on and HiGHS ignored."""
    with _running_lock:
        return len(_running)
