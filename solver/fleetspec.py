"""The fleet document: models with profiles, demand sources, demand and policies, as people write them.

Money in the document is in USD (``limit_usd_per_month: 2500000``) and is converted to integer
micro-USD here, once. The document is a plain mapping (parsed from YAML or JSON by the caller); the
format is described in docs/formats.md and by the JSON Schema that ``fleet_json_schema()`` returns.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, model_validator

from solver.domain import (
    Budget,
    BudgetScope,
    ChurnPolicy,
    Demand,
    DemandSource,
    DomainModel,
    Model,
    PlanningPolicy,
    Share,
    Slug,
)
from solver.errors import SpecError, describe_validation_error
from solver.units import usd_to_micro

PositiveUsd = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6)]
NonNegativeUsd = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]


class BudgetSpec(DomainModel):
    scope: BudgetScope
    team: Slug | None = None
    limit_usd_per_month: PositiveUsd

    def to_domain(self) -> Budget:
        return Budget(
            scope=self.scope, team=self.team, limit_micro_usd_per_month=usd_to_micro(self.limit_usd_per_month)
        )


class ChurnSpec(DomainModel):
    penalty_usd_per_replica_move: NonNegativeUsd = Decimal(0)
    max_moved_share: Share = 1.0
    min_saving_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    def to_domain(self) -> ChurnPolicy:
        return ChurnPolicy(
            penalty_micro_usd_per_replica_move=usd_to_micro(self.penalty_usd_per_replica_move),
            max_moved_share=self.max_moved_share,
            min_saving_share=self.min_saving_share,
        )


class PolicySpec(DomainModel):
    name: str = "default"
    target_utilisation: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    churn: ChurnSpec = ChurnSpec()
    budgets: tuple[BudgetSpec, ...] = ()

    def to_domain(self) -> PlanningPolicy:
        return PlanningPolicy(
            target_utilisation=self.target_utilisation,
            churn=self.churn.to_domain(),
            budgets=tuple(budget.to_domain() for budget in self.budgets),
        )


class FleetSpec(DomainModel):
    """Workloads and policies; the offers side of a scenario is described elsewhere."""

    models: tuple[Model, ...] = Field(min_length=1)
    sources: tuple[DemandSource, ...] = Field(min_length=1)
    demand: tuple[Demand, ...] = ()
    policy: PolicySpec = PolicySpec()

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        problems: list[str] = []
        model_names = _unique_names("models", [model.name for model in self.models], problems)
        source_names = _unique_names("sources", [source.name for source in self.sources], problems)
        seen_pairs: set[tuple[str, str]] = set()
        for index, demand in enumerate(self.demand):
            if demand.model not in model_names:
                problems.append(f"demand[{index}].model: unknown model {demand.model!r}")
            if demand.source not in source_names:
                problems.append(f"demand[{index}].source: unknown source {demand.source!r}")
            pair = (demand.model, demand.source)
            if pair in seen_pairs:
                problems.append(f"demand[{index}]: second demand for {demand.model} from {demand.source}")
            seen_pairs.add(pair)
        teams = {model.team for model in self.models}
        for index, budget in enumerate(self.policy.budgets):
            if budget.team is not None and budget.team not in teams:
                problems.append(f"policy.budgets[{index}].team: no model belongs to team {budget.team!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_policy(self) -> PlanningPolicy:
        return self.policy.to_domain()


def _unique_names(field: str, names: list[str], problems: list[str]) -> set[str]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            problems.append(f"{field}[{index}].name: duplicate name {name!r}")
        seen.add(name)
    return seen


def parse_fleet(document: Any, *, source: str = "fleet document") -> FleetSpec:
    """Validate a parsed document; raise SpecError listing every bad field by its path."""
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): expected a mapping, got {type(document).__name__}"])
    try:
        return FleetSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(source, _split_reference_problems(describe_validation_error(exc))) from exc


def _split_reference_problems(lines: list[str]) -> list[str]:
    # The cross-reference validator reports several problems joined by "; " against the document root.
    out: list[str] = []
    for line in lines:
        if line.startswith("(document): "):
            out.extend(part.strip() for part in line.removeprefix("(document): ").split("; "))
        else:
            out.append(line)
    return out


def fleet_json_schema() -> dict[str, Any]:
    return FleetSpec.model_json_schema()
