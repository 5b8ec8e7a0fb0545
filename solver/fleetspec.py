"""The fleet document: models with profiles, demand sources, demand and policies, as people write them.

Money in the document is in USD (``limit_usd_per_month: 2500000``) and is converted to integer
micro-USD here, once. The document is a plain mapping (parsed from YAML or JSON by the caller); the
format is described in docs/formats.md and by the JSON Schema that ``fleet_json_schema()`` returns.

Every problem is reported at once: bad fields by their path, and the checks across fields (unique names,
demand naming known models and sources, budgets naming teams, one budget per scope) on the document as
written, so that a bad field does not hide a broken reference until it is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, ValidationError, model_validator

from solver.domain import (
    MAX_MONTHLY_MICRO_USD,
    MAX_PENALTY_MICRO_USD,
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
from solver.errors import SpecError, field_path
from solver.units import MICRO_PER_USD, usd_to_micro

MAX_BUDGET_USD = Decimal(MAX_MONTHLY_MICRO_USD // MICRO_PER_USD)
MAX_PENALTY_USD = Decimal(MAX_PENALTY_MICRO_USD // MICRO_PER_USD)

PositiveUsd = Annotated[Decimal, Field(gt=0, le=MAX_BUDGET_USD, decimal_places=6)]
"""A USD amount in (0, 10^12], at most six decimals (whole micro-USD)."""
PenaltyUsd = Annotated[Decimal, Field(ge=0, le=MAX_PENALTY_USD, decimal_places=6)]


class BudgetSpec(DomainModel):
    scope: BudgetScope
    team: Slug | None = None
    limit_usd_per_month: PositiveUsd
    """USD per month, at most 10^12."""

    @model_validator(mode="after")
    def _team_matches_scope(self) -> Self:
        # The domain type's rule, checked when the document is read rather than when it is loaded.
        if self.scope is BudgetScope.TEAM and self.team is None:
            raise ValueError("team: a team budget needs a team")
        if self.scope is BudgetScope.GLOBAL and self.team is not None:
            raise ValueError("team: a global budget has no team")
        return self

    def to_domain(self) -> Budget:
        return Budget(
            scope=self.scope, team=self.team, limit_micro_usd_per_month=usd_to_micro(self.limit_usd_per_month)
        )


class ChurnSpec(DomainModel):
    penalty_usd_per_replica_move: PenaltyUsd = Decimal(0)
    """USD per replica moved, at most 1,000,000."""
    max_moved_share: Share = 1.0
    min_saving_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    def to_domain(self) -> ChurnPolicy:
        return ChurnPolicy(
            penalty_micro_usd_per_replica_move=usd_to_micro(self.penalty_usd_per_replica_move),
            max_moved_share=self.max_moved_share,
            min_saving_share=self.min_saving_share,
        )


class PlanningKnobsSpec(DomainModel):
    """A policy's global knobs: its name, the target utilisation and the churn limits (the budgets are
    stored apart from it, so the API edits the two separately)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "default"
    target_utilisation: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    churn: ChurnSpec = ChurnSpec()


class PolicySpec(PlanningKnobsSpec):
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

    @classmethod
    def reference_problems(cls, document: Mapping[str, Any]) -> list[str]:
        """The problems across fields, found on a document as written (plain data, maybe invalid).

        Entries that are not mappings, and values that are not text, are left to the field checks.
        """
        return _fleet_reference_problems(document)

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        problems = type(self).reference_problems(self.model_dump(mode="json"))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def to_policy(self) -> PlanningPolicy:
        return self.policy.to_domain()


def _entries(document: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = document.get(key)
    if not isinstance(value, list | tuple):
        return []
    return [(index, entry) for index, entry in enumerate(value) if isinstance(entry, Mapping)]


def _text(value: Any) -> str | None:
    """A name as the validated document holds it (stripped text, an enum's value), None for other values."""
    if isinstance(value, Enum):
        value = value.value
    return value.strip() if isinstance(value, str) else None


def _unique_names(field: str, document: Mapping[str, Any], problems: list[str]) -> set[str]:
    seen: set[str] = set()
    for index, entry in _entries(document, field):
        name = _text(entry.get("name"))
        if name is None:
            continue
        if name in seen:
            problems.append(f"{field}[{index}].name: duplicate name {name!r}")
        seen.add(name)
    return seen


def _fleet_reference_problems(document: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    model_names = _unique_names("models", document, problems)
    source_names = _unique_names("sources", document, problems)
    seen_pairs: set[tuple[str, str]] = set()
    for index, demand in _entries(document, "demand"):
        model, source = _text(demand.get("model")), _text(demand.get("source"))
        if model is not None and model not in model_names:
            problems.append(f"demand[{index}].model: unknown model {model!r}")
        if source is not None and source not in source_names:
            problems.append(f"demand[{index}].source: unknown source {source!r}")
        if model is not None and source is not None:
            if (model, source) in seen_pairs:
                problems.append(f"demand[{index}]: second demand for {model} from {source}")
            seen_pairs.add((model, source))
    teams = {_text(model.get("team")) for _, model in _entries(document, "models")}
    policy = document.get("policy")
    budgets = _entries(policy, "budgets") if isinstance(policy, Mapping) else []
    first: dict[tuple[str | None, str | None], int] = {}
    for index, budget in budgets:
        team, scope = _text(budget.get("team")), _text(budget.get("scope"))
        path = f"policy.budgets[{index}]"
        if team is not None and team not in teams:
            problems.append(f"{path}.team: no model belongs to team {team!r}")
        if scope is None:
            continue
        if (scope, team) in first:
            what = f"team {team!r}" if team is not None else scope
            problems.append(
                f"{path}: a second budget for {what} (first at policy.budgets[{first[scope, team]}]): "
                "one budget per scope"
            )
        first.setdefault((scope, team), index)
    return problems


def parse_fleet(document: Any, *, source: str = "fleet document") -> FleetSpec:
    """Validate a parsed document; raise SpecError listing every bad field by its path."""
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): expected a mapping, got {type(document).__name__}"])
    try:
        return FleetSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(source, all_problems(FleetSpec, document, exc)) from exc


def all_problems(spec: type[FleetSpec], document: Mapping[str, Any], error: ValidationError) -> list[str]:
    """Every problem of a document that failed validation: the bad fields, and the problems across fields.

    The cross-field validator runs only when every field is valid; otherwise its checks are run here, on
    the document as written, so that all problems are reported at once.
    """
    items = error.errors(include_url=False)
    # A collection whose items failed is also "too short after validation": that only repeats them.
    failed_items = {
        tuple(item["loc"][:position])
        for item in items
        for position, part in enumerate(item["loc"])
        if isinstance(part, int)
    }
    kept = [
        item for item in items if not (item["type"] == "too_short" and tuple(item["loc"]) in failed_items)
    ]
    lines = _split_reference_problems(
        [f"{field_path(item['loc'])}: {item['msg'].removeprefix('Value error, ')}" for item in kept]
    )
    if any(item["loc"] for item in items):
        lines.extend(problem for problem in spec.reference_problems(document) if problem not in lines)
    return lines


def _split_reference_problems(lines: list[str]) -> list[str]:
    # The cross-reference validator reports its problems one per line against the document root.
    out: list[str] = []
    for line in lines:
        if line.startswith("(document): "):
            out.extend(part.strip() for part in line.removeprefix("(document): ").split("\n"))
        else:
            out.append(line)
    return out


def fleet_json_schema() -> dict[str, Any]:
    return FleetSpec.model_json_schema()
