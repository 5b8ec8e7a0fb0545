"""What a baseline returns, and the refusal every baseline gives when some demand has no eligible offer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from solver.diagnose import unservable
from solver.domain import Plan
from solver.index import ProblemIndex
from solver.result import Violation


class BaselineStatus(StrEnum):
    OPTIMAL = "optimal"  # direct MIP: a plan proven within its gap
    FEASIBLE = "feasible"  # a plan the independent checker accepts
    VIOLATES = "violates"  # a plan was built, but the checker finds violations (listed in the result)
    INFEASIBLE = "infeasible"  # the baseline's rule cannot serve the demand (the note says where)
    NO_PLAN = "no_plan"  # direct MIP: the time ran out before a plan that routes after every loss
    BOUND = "bound"  # LP relaxation: a lower bound, no plan


@dataclass(frozen=True)
class BaselineResult:
    name: str
    status: BaselineStatus
    plan: Plan | None
    cost_micro_usd_per_hour: int | None
    wall_time_s: float
    note: str
    violations: tuple[Violation, ...] = ()
    lower_bound_micro_usd_per_hour: int | None = None
    """Direct MIP: its own dual bound; LP: the LP value (both valid lower bounds on every plan)."""
    stats: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """A plan that keeps every rule."""
        return self.plan is not None and not self.violations


def refuse_unservable(name: str, index: ProblemIndex, started: float) -> BaselineResult | None:
    """An INFEASIBLE result naming every (model, source) demand no pool can serve and the rule that
    excludes it (``solver.diagnose.unservable``); None when every demand has an eligible pool."""
    unserved = unservable(index)
    if not unserved:
        return None
    note = "; ".join(finding.text for finding in unserved)
    return BaselineResult(name, BaselineStatus.INFEASIBLE, None, None, time.perf_counter() - started, note)
