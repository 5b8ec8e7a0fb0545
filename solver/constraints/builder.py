"""What a constraint module needs of the model it writes into: a small Protocol.

``solver.mip.PlacementMip`` is the one implementation; the constraint modules see only this, so they
depend on the index and the variables, not on how the MIP is built or solved. Expressions are OR-Tools
MathOpt linear expressions (typed ``Any``: MathOpt's operators are untyped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from ortools.math_opt.python import mathopt

from solver.domain import GpuType
from solver.hall import FailureDomain
from solver.index import ProblemIndex

Expression = Any
"""A MathOpt linear expression or bounded expression."""


class FixedRest(Protocol):
    """The part of the plan outside the models being built (large-neighbourhood search), and which
    constraints linking models apply."""

    @property
    def coupling(self) -> bool:
        """Budgets and the disruption budget apply."""

    @property
    def fixed_cost(self) -> float:
        """USD per hour of the models outside."""

    @property
    def fixed_team_cost(self) -> Mapping[str, float]:
        """USD per hour per team of the models outside."""

    @property
    def fixed_moved(self) -> int:
        """Replicas the models outside move."""


class ModelBuilder(Protocol):
    @property
    def index(self) -> ProblemIndex: ...

    @property
    def options(self) -> FixedRest: ...

    @property
    def model_ids(self) -> Sequence[int]:
        """The models being built."""

    @property
    def slots_for_model(self) -> Mapping[int, list[int]]:
        """Per model, the slots it may use."""

    @property
    def replicas(self) -> Mapping[tuple[int, int], mathopt.Variable]:
        """(model, slot) -> replicas."""

    @property
    def instances(self) -> Mapping[int, mathopt.Variable]:
        """Slot -> instances (none with per-GPU pricing)."""

    @property
    def replicas_on_slot(self) -> Mapping[int, list[tuple[int, mathopt.Variable]]]:
        """Slot -> (model, replicas) of the models being built."""

    @property
    def fixed_replicas(self) -> Mapping[int, list[tuple[int, int]]]:
        """Slot -> (GPUs per replica, count) of the models outside."""

    def sum(self, terms: Iterable[Expression]) -> Expression: ...

    def add_constraint(self, bounded: Expression, label: str = "") -> None: ...

    def add_variable(self, *, lb: float, ub: float) -> mathopt.Variable:
        """A continuous variable."""

    def add_penalty(self, term: Expression) -> None:
        """A term added to the objective."""

    def gpus_per_replica(self, model_id: int, gpu_type: GpuType) -> int: ...

    def capacity_ktok(self, model_id: int, slot_id: int, *, risk_adjusted: bool = True) -> float: ...

    def set_capacity(self, model_id: int, sources: frozenset[int]) -> Expression:
        """The model's capacity (ktok/s) in the pools the sources can reach."""

    def capacity_in_domain(self, model_id: int, sources: frozenset[int], domain: FailureDomain) -> Expression:
        """The part of ``set_capacity`` inside a failure domain."""
