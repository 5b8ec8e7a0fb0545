"""The plan file: a solve's result with the context a reader needs, as documented JSON.

``build_plan_file(problem, result)`` turns a ``SolveResult`` into a ``PlanFile``: status, cost per hour
and per month (USD and exact integer micro-USD), the proven lower bound, the gap, wall time, the
parameters, placements with their offers spelled out (provider, region, zone, instance type, GPU type,
purchase option, term, instances, price, replicas per model), the cost attributed to each model per
placement, routing, explanations, checker findings, baselines and solver statistics. The format is
described in docs/formats.md ("Plan file"); ``plan_json_schema()`` is its JSON Schema (committed as
docs/plan.schema.json). ``read_plan_file`` reads one back and ``PlanFile.to_plan()`` rebuilds the
``solver.domain.Plan`` (for ``solver.validate.validate``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from solver.costing import sunk_cost
from solver.domain import (
    GpuType,
    Placement,
    Plan,
    PurchaseOption,
    ReplicaCount,
    ReservedTerm,
    Route,
    Upfront,
)
from solver.errors import SpecError, describe_validation_error
from solver.problem import Problem, SolveParams
from solver.result import Explanation, SolveResult, SolveStatus, Violation
from solver.units import micro_to_usd, per_month

PLAN_FILE_FORMAT: Final = "gpuplan-plan"
PLAN_FILE_VERSION: Final = 1


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(_Document):
    """An amount per hour and per month (730 h): USD as JSON numbers, and exact integer micro-USD."""

    usd_per_hour: float
    usd_per_month: float
    micro_usd_per_hour: int
    micro_usd_per_month: int

    @classmethod
    def per_hour(cls, micro: int) -> Money:
        return cls(
            usd_per_hour=_usd(micro),
            usd_per_month=_usd(per_month(micro)),
            micro_usd_per_hour=micro,
            micro_usd_per_month=per_month(micro),
        )


def _usd(micro: int) -> float:
    return float(micro_to_usd(micro))


class PlacementEntry(_Document):
    """Instances bought on one offer and the replicas packed onto them."""

    offer_key: str
    provider: str
    region: str
    """Region code (``us-east-1``); the region key is ``provider/region``."""
    zone: str
    instance_type: str
    gpu_type: GpuType
    gpus_per_instance: int
    purchase_option: PurchaseOption
    term: ReservedTerm | None = None
    upfront: Upfront | None = None
    instances: int = Field(gt=0)
    committed_instances: NonNegativeInt = 0
    """Instances covered by commitments (already paid; their cost is in ``sunk_cost``)."""
    price_usd_per_hour: float
    """The offer's price per instance-hour."""
    price_micro_usd_per_hour: int
    cost_usd_per_hour: float
    """Instances beyond the commitments at the offer's price."""
    cost_micro_usd_per_hour: int
    replicas: dict[str, int]
    """Replicas per model on these instances."""


class AllocationEntry(_Document):
    """One model's replicas on one placement, with the cost attributed to them (their GPUs at the offer's
    price per GPU, as team budgets count it); idle GPUs are attributed to no model."""

    model: str
    team: str
    region: str
    """Region key, provider/code."""
    offer_key: str
    gpu_type: GpuType
    purchase_option: PurchaseOption
    replicas: int
    gpus: int
    cost_usd_per_hour: float
    cost_micro_usd_per_hour: int
    """Rounded to the micro-USD."""


class ExplanationEntry(_Document):
    """One finding a FinOps reader can act on."""

    topic: str
    """The finding's label: ``model:NAME``, ``alternative:NAME``, ``constraint:RULE[:NAME]``,
    ``policy:RULE``, ``infeasible[:RULE]``, ``infeasible:model:NAME``, ``relaxation``, ``no_plan``,
    ``kept`` (``solver.result.Explanation.label``)."""
    text: str
    monthly_usd: float | None = None
    """A cost attached to the finding, USD per month (the solver's micro-USD, rounded to the cent)."""

    @classmethod
    def of(cls, explanation: Explanation) -> ExplanationEntry:
        return cls(topic=explanation.label, text=explanation.text, monthly_usd=explanation.monthly_usd)

    def to_explanation(self) -> Explanation:
        """The solver's typed explanation again (plans store their explanations as entries)."""
        money = None if self.monthly_usd is None else round(self.monthly_usd * 1_000_000)
        return Explanation.model_validate(
            {"topic": self.topic, "text": self.text, "monthly_micro_usd": money}
        )


class BaselineEntry(_Document):
    name: str
    status: str
    cost: Money | None = None
    """None when the baseline found no plan."""
    saving_share: float | None = None
    """(baseline cost - plan cost) / baseline cost; None when either has no cost or the baseline's plan
    breaks a rule (a saving against a plan that breaks the rules says nothing)."""
    rules_broken: tuple[str, ...] = ()
    """The kinds of rule the baseline's plan breaks (``redundancy``, ``budget``, ...), as the independent
    checker found them; empty for a plan that keeps every rule."""


class Totals(_Document):
    placements: int
    instances: int
    gpus: int
    gpus_used: int
    replicas: int


class PlanFile(_Document):
    format: Literal["gpuplan-plan"] = PLAN_FILE_FORMAT
    version: Literal[1] = PLAN_FILE_VERSION
    created_at: dt.datetime | None = None
    scenario: str | None = None
    """Where the problem came from (a scenario file, ``database``)."""
    status: SolveStatus
    cost: Money | None = None
    """Marginal plus sunk cost of the plan; None without a plan."""
    sunk_cost: Money
    """Commitments, paid whatever the plan does (included in ``cost``)."""
    lower_bound: Money | None = None
    gap: float | None = None
    """(cost - lower bound) / cost."""
    wall_time_s: float
    parameters: SolveParams
    totals: Totals
    placements: tuple[PlacementEntry, ...] = ()
    allocation: tuple[AllocationEntry, ...] = ()
    routes: tuple[Route, ...] = ()
    explanations: tuple[ExplanationEntry, ...] = ()
    violations: tuple[Violation, ...] = ()
    baselines: tuple[BaselineEntry, ...] = ()
    stats: dict[str, float | int | str] = Field(default_factory=dict)

    def to_plan(self) -> Plan | None:
        """The plan as the solver's domain type, or None when the result had none."""
        if self.cost is None:
            return None
        return Plan(
            placements=tuple(
                Placement(
                    offer_key=entry.offer_key,
                    instances=entry.instances,
                    replicas=tuple(
                        ReplicaCount(model=m, replicas=n) for m, n in sorted(entry.replicas.items())
                    ),
                )
                for entry in self.placements
            ),
            routes=self.routes,
        )


class BaselineResult(Protocol):
    """What ``solver.baselines`` functions return."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> Any: ...
    @property
    def cost_micro_usd_per_hour(self) -> int | None: ...
    @property
    def plan(self) -> Plan | None: ...
    @property
    def violations(self) -> Sequence[Violation]: ...


def build_plan_file(
    problem: Problem,
    result: SolveResult,
    *,
    scenario: str | None = None,
    created_at: dt.datetime | None = None,
    baselines: Iterable[BaselineResult] = (),
) -> PlanFile:
    offers = {offer.key: offer for offer in problem.offers}
    models = {model.name: model for model in problem.models}
    committed: dict[str, int] = {}
    for commitment in problem.commitments:
        committed[commitment.offer_key] = committed.get(commitment.offer_key, 0) + commitment.instances
    placements: list[PlacementEntry] = []
    allocation: list[AllocationEntry] = []
    gpus = gpus_used = replicas_total = 0
    plan = result.plan
    for placement in plan.placements if plan is not None else ():
        offer = offers[placement.offer_key]
        covered = min(placement.instances, committed.get(offer.key, 0))
        cost = (placement.instances - covered) * offer.price_micro_usd_per_hour
        placements.append(
            PlacementEntry(
                offer_key=offer.key,
                provider=offer.provider,
                region=offer.region,
                zone=offer.zone,
                instance_type=offer.instance_type,
                gpu_type=offer.gpu_type,
                gpus_per_instance=offer.gpus_per_instance,
                purchase_option=offer.purchase_option,
                term=offer.term,
                upfront=offer.upfront,
                instances=placement.instances,
                committed_instances=covered,
                price_usd_per_hour=_usd(offer.price_micro_usd_per_hour),
                price_micro_usd_per_hour=offer.price_micro_usd_per_hour,
                cost_usd_per_hour=_usd(cost),
                cost_micro_usd_per_hour=cost,
                replicas={count.model: count.replicas for count in placement.replicas},
            )
        )
        gpus += placement.instances * offer.gpus_per_instance
        for count in placement.replicas:
            model = models[count.model]
            profile = model.profile_for(offer.gpu_type)
            used = count.replicas * (profile.gpus_per_replica if profile is not None else 0)
            attributed = round(Fraction(offer.price_micro_usd_per_hour * used, offer.gpus_per_instance))
            gpus_used += used
            replicas_total += count.replicas
            allocation.append(
                AllocationEntry(
                    model=model.name,
                    team=model.team,
                    region=offer.region_key,
                    offer_key=offer.key,
                    gpu_type=offer.gpu_type,
                    purchase_option=offer.purchase_option,
                    replicas=count.replicas,
                    gpus=used,
                    cost_usd_per_hour=_usd(attributed),
                    cost_micro_usd_per_hour=attributed,
                )
            )
    allocation.sort(key=lambda entry: (entry.model, entry.region, entry.offer_key))
    cost_micro = result.cost_micro_usd_per_hour if plan is not None else None
    return PlanFile(
        created_at=created_at,
        scenario=scenario,
        status=result.status,
        cost=Money.per_hour(cost_micro) if cost_micro is not None else None,
        sunk_cost=Money.per_hour(sunk_cost(problem)),
        lower_bound=(
            Money.per_hour(result.lower_bound_micro_usd_per_hour)
            if result.lower_bound_micro_usd_per_hour is not None
            else None
        ),
        gap=result.gap,
        wall_time_s=round(result.wall_time_s, 3),
        parameters=result.params,
        totals=Totals(
            placements=len(placements),
            instances=sum(entry.instances for entry in placements),
            gpus=gpus,
            gpus_used=gpus_used,
            replicas=replicas_total,
        ),
        placements=tuple(placements),
        allocation=tuple(allocation),
        routes=plan.routes if plan is not None else (),
        explanations=tuple(ExplanationEntry.of(e) for e in result.explanations),
        violations=result.violations,
        baselines=tuple(baseline_entries(baselines, cost_micro)),
        stats=dict(result.stats),
    )


def baseline_entries(baselines: Iterable[BaselineResult], cost_micro: int | None) -> list[BaselineEntry]:
    """One entry per baseline; the saving only against a baseline plan that keeps every rule."""
    entries = []
    for baseline in baselines:
        base = baseline.cost_micro_usd_per_hour
        broken = tuple(sorted({str(violation.kind) for violation in baseline.violations}))
        keeps_rules = baseline.plan is not None and not broken and str(baseline.status) != "violates"
        saving = None
        if keeps_rules and base is not None and base > 0 and cost_micro is not None:
            saving = (base - cost_micro) / base
        entries.append(
            BaselineEntry(
                name=baseline.name,
                status=str(baseline.status),
                cost=Money.per_hour(base) if base is not None else None,
                saving_share=saving,
                rules_broken=broken,
            )
        )
    return entries


def plan_file_json(plan_file: PlanFile) -> str:
    return json.dumps(plan_file.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def write_plan_file(path: Path, plan_file: PlanFile) -> None:
    path.write_text(plan_file_json(plan_file), encoding="utf-8")


def read_plan_file(path: Path) -> PlanFile:
    source = str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(source, [f"cannot read the plan file: {exc.strerror or exc}"]) from exc
    except json.JSONDecodeError as exc:
        raise SpecError(
            source, [f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"]
        ) from exc
    try:
        return PlanFile.model_validate(document)
    except ValidationError as exc:
        raise SpecError(source, describe_validation_error(exc)) from exc


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of plan files (committed as docs/plan.schema.json)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gpuplan.dev/schemas/plan.schema.json",
        **PlanFile.model_json_schema(mode="serialization"),
        "title": "gpuplan plan file",
        "description": "A plan written by `gpuplan solve --out` (docs/formats.md, 'Plan file').",
    }


def explanation_lines(explanations: Sequence[ExplanationEntry]) -> list[str]:
    """Explanations as lines of text, with their monthly figure where they have one."""
    lines = []
    for explanation in explanations:
        money = f" ({explanation.monthly_usd:,.0f} USD/month)" if explanation.monthly_usd is not None else ""
        lines.append(f"[{explanation.topic}] {explanation.text}{money}")
    return lines
