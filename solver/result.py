"""What a solve returns: a status, the plan, its cost, the proven bound and the explanations."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from solver.domain import DomainModel, Plan
from solver.problem import SolveParams
from solver.units import HOURS_PER_MONTH


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"  # proven within the requested gap
    FEASIBLE = "feasible"  # a checked plan, gap above the requested one (time limit)
    INFEASIBLE = "infeasible"  # no plan keeps every rule; see the diagnosis
    NO_PLAN = "no_plan"  # the time limit ran out before any plan was found
    KEPT = "kept"  # the current fleet stays: no plan saves the policy's minimum


class ViolationKind(StrEnum):
    UNKNOWN_REFERENCE = "unknown_reference"
    PACKING = "packing"
    AVAILABILITY = "availability"
    DEMAND = "demand"
    LATENCY = "latency"
    RESIDENCY = "residency"
    CAPACITY = "capacity"
    REDUNDANCY = "redundancy"
    SPOT = "spot"
    BUDGET = "budget"
    CHURN = "churn"
    PURCHASE_OPTION = "purchase_option"


class Violation(DomainModel):
    kind: ViolationKind
    message: str
    model: str | None = None
    source: str | None = None
    region: str | None = None
    offer: str | None = None

    def __init__(self, kind: ViolationKind, message: str, **kwargs: str | None) -> None:
        super().__init__(kind=kind, message=message, **kwargs)


class Explanation(DomainModel):
    """One finding a FinOps reader can act on."""

    topic: str
    """``model:<name>``, ``constraint:<kind>``, ``policy:<name>``, ``infeasible``."""
    text: str
    monthly_usd: float | None = None
    """A cost attached to the finding (what a policy costs per month, how much costlier an alternative is)."""


class SolveResult(DomainModel):
    status: SolveStatus
    plan: Plan | None = None
    cost_micro_usd_per_hour: int | None = None
    """Marginal plus sunk (committed) cost of the plan, per hour."""
    churn_penalty_micro_usd_per_hour: int = 0
    """The policy's penalty for the replicas the plan moves (zero without a current fleet)."""
    lower_bound_micro_usd_per_hour: int | None = None
    """Best proven lower bound on cost plus churn penalty of any plan keeping every rule."""
    wall_time_s: float
    params: SolveParams
    explanations: tuple[Explanation, ...] = ()
    violations: tuple[Violation, ...] = ()
    """What the independent checker found; empty for every returned plan."""
    stats: dict[str, float | int | str] = Field(default_factory=dict)

    @property
    def objective_micro_usd_per_hour(self) -> int | None:
        """What the solver minimises: cost plus churn penalty."""
        if self.cost_micro_usd_per_hour is None:
            return None
        return self.cost_micro_usd_per_hour + self.churn_penalty_micro_usd_per_hour

    @property
    def gap(self) -> float | None:
        """(objective - lower bound) / objective."""
        objective = self.objective_micro_usd_per_hour
        if objective is None or self.lower_bound_micro_usd_per_hour is None:
            return None
        if objective == 0:
            return 0.0
        return max(0.0, objective - self.lower_bound_micro_usd_per_hour) / objective

    @property
    def cost_micro_usd_per_month(self) -> int | None:
        if self.cost_micro_usd_per_hour is None:
            return None
        return self.cost_micro_usd_per_hour * HOURS_PER_MONTH
