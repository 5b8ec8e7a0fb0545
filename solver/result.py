"""What a solve returns: a status, the plan, its cost, the proven bound and the explanations."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from solver.domain import DomainModel, Plan
from solver.problem import SolveParams
from solver.scale import MICRO
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
        super().__init__(**{"kind": kind, "message": message, **kwargs})


class Topic(StrEnum):
    """What a finding is about."""

    MODEL = "model"  # where a model runs, why, and what it costs
    ALTERNATIVE = "alternative"  # the cheapest capacity a model did not use, and why
    CONSTRAINT = "constraint"  # a rule the plan runs up against
    POLICY = "policy"  # what a policy costs
    INFEASIBLE = "infeasible"  # why no plan keeps every rule
    RELAXATION = "relaxation"  # what relaxing a policy would lower the cheapest plan to
    NO_PLAN = "no_plan"  # why no plan was found in time
    KEPT = "kept"  # why the current fleet stays


class Rule(StrEnum):
    """The rule or policy a finding names."""

    AVAILABILITY = "availability"
    SPOT = "spot"
    SPOT_CAP = "spot cap"
    REDUNDANCY = "redundancy"
    RESIDENCY = "residency"
    BUDGET = "budget"


class Explanation(DomainModel):
    """One finding a FinOps reader can act on: a topic, the rule and the model it is about, the text,
    and the money attached."""

    topic: Topic
    text: str
    rule: Rule | None = None
    model: str | None = None
    monthly_micro_usd: int | None = None
    """A cost attached to the finding (what a policy costs per month, what the cheapest plan would cost
    with a policy relaxed), in micro-USD per month."""

    @model_validator(mode="before")
    @classmethod
    def _from_label(cls, data: Any) -> Any:
        """Accept a ``label`` string as the topic (``topic="constraint:spot:llama"``)."""
        if isinstance(data, dict) and isinstance(data.get("topic"), str):
            topic, *rest = data["topic"].split(":", 2)
            if topic in Topic.__members__.values() and rest:
                subject = _subject_of_label(Topic(topic), rest)
                if any(data.get(key) not in (None, value) for key, value in subject.items()):
                    raise ValueError(f"topic {data['topic']!r} contradicts the rule or model given")
                data = {**data, "topic": topic, **subject}
        return data

    @property
    def label(self) -> str:
        """The topic as one string, as plan files and text output show it: ``model:NAME``,
        ``alternative:NAME``, ``constraint:RULE[:NAME]``, ``policy:RULE``, ``infeasible[:RULE]``,
        ``infeasible:model:NAME``, ``relaxation``, ``no_plan``, ``kept``."""
        parts = [self.topic.value]
        if self.rule is not None:
            parts.append(self.rule.value)
        if self.model is not None:
            if self.topic is Topic.INFEASIBLE:
                parts.append("model")
            parts.append(self.model)
        return ":".join(parts)

    @property
    def monthly_usd(self) -> float | None:
        """``monthly_micro_usd`` in USD (rounded to the cent), for display."""
        if self.monthly_micro_usd is None:
            return None
        return round(self.monthly_micro_usd / MICRO, 2)


def _subject_of_label(topic: Topic, rest: list[str]) -> dict[str, str]:
    if topic in (Topic.MODEL, Topic.ALTERNATIVE):
        return {"model": ":".join(rest)}
    if topic is Topic.INFEASIBLE and rest[0] == "model" and len(rest) == 2:
        return {"model": rest[1]}
    subject = {"rule": rest[0]}
    if len(rest) == 2:
        subject["model"] = rest[1]
    return subject


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
