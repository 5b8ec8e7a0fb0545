"""Workloads, demand and policies in the database: load a fleet document, read the fleet back.

Loading makes the database match the document for every entity the document names (models with their
profiles and demand, sources, budgets, the named policy, which becomes the active one); entities it does
not name are left alone. Flushes, never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from pricing.files import UnreadableFileError, YamlDocumentError, load_yaml, read_text
from scheduler.db.models import (
    BudgetRow,
    DemandRow,
    DemandSourceRow,
    GpuTypeRow,
    ModelProfileRow,
    PlanningPolicyRow,
    RegionRow,
    ServedModelRow,
)
from scheduler.services.audit import record
from scheduler.services.reference import ReferenceData, lock_reference_data, region_rows_by_key
from solver.domain import (
    COUNTRY_GROUPS,
    ISO_COUNTRIES,
    Budget,
    ChurnPolicy,
    Demand,
    DemandSource,
    GpuType,
    Model,
    ModelProfile,
    PlanningPolicy,
)
from solver.errors import SpecError
from solver.fleetspec import FleetSpec, parse_fleet

SAMPLE_FLEET = "sample_fleet.yaml"


def read_fleet_file(text: str, *, source: str) -> FleetSpec:
    """Parse YAML (or JSON) text into a validated fleet document."""
    try:
        document: Any = load_yaml(text)
    except YamlDocumentError as exc:
        raise SpecError(source, [f"{exc.where}{exc.message}"]) from exc
    return parse_fleet(document, source=source)


def read_fleet_path(path: Path | str) -> FleetSpec:
    """Read and validate a fleet document file (YAML or JSON) through the one file reader
    (``pricing.files``): a regular file of at most 64 MiB of UTF-8; anything else is a SpecError naming the
    file (and, for bytes that are not UTF-8, their offset and line)."""
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        raise SpecError(str(path), [f"cannot read the fleet document: {exc.message}"]) from exc
    return read_fleet_file(text, source=str(path))


def sample_fleet() -> FleetSpec:
    text = resources.files("scheduler.data").joinpath(SAMPLE_FLEET).read_text(encoding="utf-8")
    return read_fleet_file(text, source=f"scheduler/data/{SAMPLE_FLEET}")


@dataclass(frozen=True)
class FleetLoadResult:
    models: int
    profiles: int
    sources: int
    demands: int
    budgets: int
    policy: str


def known_jurisdictions(session: Session) -> frozenset[str]:
    """The jurisdiction tags a residency rule may name: a country code, a group (EU, EEA), or a tag a
    stored region or demand source carries."""
    tags: set[str] = set(ISO_COUNTRIES) | set(COUNTRY_GROUPS)
    for column in (RegionRow.jurisdictions, DemandSourceRow.jurisdictions):
        for listed in session.scalars(sa.select(column)):
            tags.update(listed)
    return frozenset(tags)


def source_store_problems(
    session: Session, sources: Sequence[tuple[str, DemandSource]]
) -> list[tuple[str, str]]:
    """What the database does not know of demand sources, as (field path, message): an anchor region
    not in the catalog, a residency rule naming a jurisdiction no country, group, region or source has.
    ``sources`` pairs each source with the path it is reported under (``sources[2]``, ``body``)."""
    anchors = {source.anchor_region for _, source in sources if source.anchor_region}
    regions = region_rows_by_key(session, anchors) if anchors else {}
    known = known_jurisdictions(session) if any(source.residency for _, source in sources) else frozenset()
    problems: list[tuple[str, str]] = []
    for path, source in sources:
        if source.anchor_region and source.anchor_region not in regions:
            problems.append(
                (f"{path}.anchor_region", f"unknown region {source.anchor_region!r} (is the catalog loaded?)")
            )
        for tag in sorted(source.residency or ()):
            if tag not in known:
                problems.append(
                    (
                        f"{path}.residency",
                        f"unknown jurisdiction {tag!r}: not a country code, EU or EEA, "
                        "nor a tag a stored region or source carries",
                    )
                )
    return problems


def write_model(
    session: Session,
    row: ServedModelRow,
    model: Model,
    *,
    now: dt.datetime,
    gpu_types: Mapping[GpuType, GpuTypeRow],
) -> None:
    """Write a model document into its row, its profiles replaced (for fleet loads and the API)."""
    row.name = model.name
    row.team = model.team
    row.params_b = model.params_b
    row.latency_slo_ms = model.latency_slo_ms
    row.redundancy = model.redundancy
    row.redundancy_share = model.redundancy_share
    row.max_spot_share = model.max_spot_share
    row.updated_at = now
    if row.profiles:
        # Delete the old profiles before inserting new ones for the same (model, GPU type).
        row.profiles.clear()
        session.flush()
    row.profiles = [
        ModelProfileRow(
            gpu_type=gpu_types[profile.gpu_type],
            gpus_per_replica=profile.gpus_per_replica,
            tokens_per_s_per_replica=profile.tokens_per_s_per_replica,
            service_latency_ms=profile.service_latency_ms,
            source=profile.source,
        )
        for profile in model.profiles
    ]


def load_fleet(session: Session, fleet: FleetSpec, *, now: dt.datetime, actor: str) -> FleetLoadResult:
    lock_reference_data(session)  # GPU types are reference data; also one fleet load at a time
    anchors = {source.anchor_region for source in fleet.sources if source.anchor_region}
    regions = region_rows_by_key(session, anchors)
    problems = [
        f"{path}: {message}"
        for path, message in source_store_problems(
            session, [(f"sources[{index}]", source) for index, source in enumerate(fleet.sources)]
        )
    ]
    if problems:
        raise SpecError("fleet document", problems)

    reference = ReferenceData(session)
    reference.ensure_gpu_types()
    models = {row.name: row for row in session.scalars(sa.select(ServedModelRow))}
    for model in fleet.models:
        row = models.get(model.name)
        if row is None:
            row = ServedModelRow(name=model.name, created_at=now)
            session.add(row)
            models[model.name] = row
        write_model(session, row, model, now=now, gpu_types=reference.gpu_types)
    session.flush()

    sources = {row.name: row for row in session.scalars(sa.select(DemandSourceRow))}
    for source in fleet.sources:
        source_row = sources.get(source.name)
        if source_row is None:
            source_row = DemandSourceRow(name=source.name)
            session.add(source_row)
            sources[source.name] = source_row
        source_row.lat = source.lat
        source_row.lon = source.lon
        source_row.country = source.country
        source_row.jurisdictions = sorted(source.jurisdictions)
        source_row.residency = sorted(source.residency) if source.residency is not None else None
        source_row.anchor_region = regions[source.anchor_region] if source.anchor_region else None
    session.flush()

    named_models = [models[model.name].id for model in fleet.models]
    session.execute(sa.delete(DemandRow).where(DemandRow.model_id.in_(named_models)))
    for demand in fleet.demand:
        session.add(
            DemandRow(
                model_id=models[demand.model].id,
                source_id=sources[demand.source].id,
                tokens_per_s=demand.tokens_per_s,
                updated_at=now,
            )
        )

    policy = fleet.to_policy()
    for budget in policy.budgets:
        budget_row = session.scalar(
            sa.select(BudgetRow).where(BudgetRow.scope == budget.scope, BudgetRow.team.is_(None))
            if budget.team is None
            else sa.select(BudgetRow).where(BudgetRow.scope == budget.scope, BudgetRow.team == budget.team)
        )
        if budget_row is None:
            budget_row = BudgetRow(scope=budget.scope, team=budget.team)
            session.add(budget_row)
        budget_row.limit_micro_usd_per_month = budget.limit_micro_usd_per_month
        budget_row.updated_at = now

    _activate_policy(session, fleet.policy.name, policy, now)
    record(
        session,
        actor=actor,
        action="fleet.loaded",
        entity_type="fleet",
        entity_id=fleet.policy.name,
        details={"models": [m.name for m in fleet.models], "sources": [s.name for s in fleet.sources]},
        at=now,
    )
    session.flush()
    return FleetLoadResult(
        models=len(fleet.models),
        profiles=sum(len(model.profiles) for model in fleet.models),
        sources=len(fleet.sources),
        demands=len(fleet.demand),
        budgets=len(policy.budgets),
        policy=fleet.policy.name,
    )


def _activate_policy(session: Session, name: str, policy: PlanningPolicy, now: dt.datetime) -> None:
    row = session.scalar(sa.select(PlanningPolicyRow).where(PlanningPolicyRow.name == name))
    session.execute(sa.update(PlanningPolicyRow).where(PlanningPolicyRow.name != name).values(active=False))
    session.flush()
    if row is None:
        row = PlanningPolicyRow(name=name)
        session.add(row)
    row.active = True
    row.target_utilisation = policy.target_utilisation
    row.churn_penalty_micro_usd_per_replica = policy.churn.penalty_micro_usd_per_replica_move
    row.churn_max_moved_share = policy.churn.max_moved_share
    row.churn_min_saving_share = policy.churn.min_saving_share
    row.updated_at = now


# ---------------------------------------------------------------------------------------- read back


@dataclass(frozen=True)
class Fleet:
    """The workloads, demand and policy as stored, in domain types."""

    models: tuple[Model, ...]
    sources: tuple[DemandSource, ...]
    demand: tuple[Demand, ...]
    policy: PlanningPolicy
    policy_name: str


def read_fleet(session: Session) -> Fleet:
    model_rows = session.scalars(
        sa.select(ServedModelRow)
        .options(selectinload(ServedModelRow.profiles).joinedload(ModelProfileRow.gpu_type))
        .order_by(ServedModelRow.name)
    ).all()
    models = tuple(
        Model(
            name=row.name,
            team=row.team,
            params_b=row.params_b,
            latency_slo_ms=row.latency_slo_ms,
            redundancy=row.redundancy,
            redundancy_share=row.redundancy_share,
            max_spot_share=row.max_spot_share,
            profiles=tuple(
                ModelProfile(
                    gpu_type=profile.gpu_type.name,
                    gpus_per_replica=profile.gpus_per_replica,
                    tokens_per_s_per_replica=profile.tokens_per_s_per_replica,
                    service_latency_ms=profile.service_latency_ms,
                    source=profile.source,
                )
                for profile in row.profiles
            ),
        )
        for row in model_rows
    )
    source_rows = session.scalars(
        sa.select(DemandSourceRow)
        .options(selectinload(DemandSourceRow.anchor_region))
        .order_by(DemandSourceRow.name)
    ).all()
    sources = []
    for row in source_rows:
        anchor = row.anchor_region
        sources.append(
            DemandSource(
                name=row.name,
                lat=row.lat,
                lon=row.lon,
                country=row.country,
                jurisdictions=frozenset(row.jurisdictions),
                residency=frozenset(row.residency) if row.residency is not None else None,
                anchor_region=f"{anchor.provider.name}/{anchor.code}" if anchor is not None else None,
            )
        )
    demand_rows = session.execute(
        sa.select(ServedModelRow.name, DemandSourceRow.name, DemandRow.tokens_per_s)
        .join(DemandRow.model)
        .join(DemandRow.source)
        .order_by(ServedModelRow.name, DemandSourceRow.name)
    ).all()
    demand = tuple(Demand(model=m, source=s, tokens_per_s=t) for m, s, t in demand_rows)
    policy_row = session.scalar(sa.select(PlanningPolicyRow).where(PlanningPolicyRow.active.is_(True)))
    budgets = tuple(
        Budget(scope=row.scope, team=row.team, limit_micro_usd_per_month=row.limit_micro_usd_per_month)
        for row in session.scalars(sa.select(BudgetRow).order_by(BudgetRow.scope, BudgetRow.team))
    )
    if policy_row is None:
        return Fleet(models, tuple(sources), demand, PlanningPolicy(budgets=budgets), "default")
    policy = PlanningPolicy(
        target_utilisation=policy_row.target_utilisation,
        churn=ChurnPolicy(
            penalty_micro_usd_per_replica_move=policy_row.churn_penalty_micro_usd_per_replica,
            max_moved_share=policy_row.churn_max_moved_share,
            min_saving_share=policy_row.churn_min_saving_share,
        ),
        budgets=budgets,
    )
    return Fleet(models, tuple(sources), demand, policy, policy_row.name)
