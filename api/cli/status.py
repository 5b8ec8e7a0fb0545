"""Exit statuses of every ``gpuplan`` command (README, "Exit status"). Only the standard library here:
the package's entry point uses them before the heavy libraries are loaded."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    """Success; for ``solve`` and ``plan``: a plan was found."""
    BAD_INPUT = 1
    """A malformed file or document, an option value gpuplan cannot use, nothing to plan."""
    PROVIDER_FAILED = 1
    """``collect``, ``prices sheet load``: a provider's collection failed (the others' data is kept)."""
    DATABASE = 2
    """The database: a bad URL, unreachable, missing, damaged, not migrated or at another revision, or
    it refused a write."""
    INFEASIBLE = 3
    """No plan keeps every rule (the diagnosis is printed)."""
    NO_PLAN = 4
    """No plan within the time limit."""
    NOT_APPLIED = 5
    """``apply``: the plan was partially applied or failed (each action's outcome is printed; ``apply
    --resume`` retries what did not succeed)."""
    JOB_FAILED = 6
    """``scheduler run-once``: the job ran and failed (its error is printed and recorded in job_runs)."""
    USAGE = 64
    """The command was called wrongly: unknown command or option, missing argument, an option value of
    the wrong type or out of its range (EX_USAGE of sysexits.h)."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT)."""
