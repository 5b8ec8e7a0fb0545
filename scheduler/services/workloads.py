"""Workloads one entity at a time: models with their profiles, demand sources, demand, planning policies
and budgets, as the REST API creates, reads, updates and deletes them.

One validator: an entity arrives already checked field by field by the fleet document's own types
(``solver.domain.Model``, ``DemandSource``, ``Demand``, ``solver.fleetspec.BudgetSpec``,
``PlanningKnobsSpec``). The checks across entities are the fleet document's too: every write builds the
stored workloads as a fleet document with the change applied and runs ``FleetSpec.reference_problems``
on it (unique names, demand naming known models and sources, budgets naming teams that own a model, one
budget per scope), then the database's own checks that the fleet loader makes (``source_store_problems``:
anchor regions and residency jurisdictions). Only problems the change brings are reported; a problem on
the entity itself names its field under ``body``, one it causes elsewhere names the entity it breaks.

Optimistic concurrency: every entity has an entity tag, a digest of its representation (``etag``). An
update or delete names the tag it saw; the write takes the workload lock (the fleet loader's, so writes
and fleet loads run one at a time), reads the row ``FOR UPDATE``, compares the tags and writes, all in
the caller's transaction. Every write is recorded in the audit log. Flushes, never commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from scheduler.db.base import Base
from scheduler.db.models import (
    BudgetRow,
    DemandRow,
    DemandSourceRow,
    FleetReplicaRow,
    GpuTypeRow,
    ModelProfileRow,
    PlanningPolicyRow,
    PlanPlacementRow,
    PlanReplicaRow,
    PlanRouteRow,
    ServedModelRow,
)
from scheduler.services.audit import record
from scheduler.services.fleet import source_store_problems, write_model
from scheduler.services.reference import ReferenceData, lock_reference_data, region_rows_by_key
from solver.domain import Demand, DemandSource, GpuType, Model
from solver.errors import InputError
from solver.fleetspec import BudgetSpec, FleetSpec, PlanningKnobsSpec
from solver.units import micro_to_usd

Row = TypeVar("Row", bound=Base)


# -------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class FieldProblem:
    """One problem: the path of the bad field (``body.profiles.0.gpu_type``) or the entity it concerns
    (``budget 3``), and what is wrong."""

    field: str
    message: str


class WorkloadError(InputError):
    """A workload write that cannot be made; ``problems`` names each bad field or entity."""

    def __init__(self, detail: str, problems: Iterable[FieldProblem] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = list(problems)


class WorkloadInvalidError(WorkloadError):
    """The entity is not valid as given (a reference to something unknown, a field the database refuses)."""


class WorkloadNotFoundError(WorkloadError):
    """No entity of that kind has that id."""


class WorkloadConflictError(WorkloadError):
    """The write conflicts with what is stored: a name taken, or entities that refer to the one changed."""


class PreconditionFailedError(WorkloadError):
    """The entity tag the caller saw is no longer the entity's: someone changed it since."""


# ---------------------------------------------------------------------------------------- entity tags


def etag(view: Mapping[str, Any]) -> str:
    """A strong entity tag: the digest of the representation without its timestamps."""
    content = {key: value for key, value in view.items() if key not in ("created_at", "updated_at")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def if_match_allows(if_match: str, current: str) -> bool:
    """Whether an ``If-Match`` header (``"tag"``, a list of tags, or ``*``) matches the current tag.

    A weak tag (``W/"..."``) never matches: If-Match uses the strong comparison (RFC 9110, 13.1.1).
    """
    candidates = [part.strip() for part in if_match.split(",")]
    return any(candidate in ("*", current) for candidate in candidates)


def check_tag(kind: str, entity_id: int, view: Mapping[str, Any], if_match: str) -> None:
    current = etag(view)
    if not if_match_allows(if_match, current):
        raise PreconditionFailedError(
            f"{kind} {entity_id} changed since the entity tag {if_match} was read (it is now {current}): "
            "read it again and repeat the change on what is stored",
            [FieldProblem("header.If-Match", f"stale entity tag {if_match}; the current one is {current}")],
        )


# ------------------------------------------------------------------------------------------- helpers


def lock_workloads(session: Session) -> None:
    """Hold the workload lock until the transaction ends (every write here takes it; taking it again
    in the same transaction is harmless): a read-modify-write such as a PATCH reads under it."""
    lock_reference_data(session)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


def _get(session: Session, row_type: type[Row], kind: str, entity_id: int, *, for_update: bool) -> Row:
    query = sa.select(row_type).where(row_type.id == entity_id)  # type: ignore[attr-defined]
    if for_update:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise WorkloadNotFoundError(f"no {kind} {entity_id}")
    return row


def _page(session: Session, query: sa.Select[Any], *, limit: int, offset: int) -> list[Any]:
    return list(session.scalars(query.limit(limit).offset(offset)))


def _audit(
    session: Session, actor: str, action: str, kind: str, entity_id: int, details: dict[str, Any]
) -> None:
    record(
        session,
        actor=actor,
        action=f"{kind}.{action}",
        entity_type=kind,
        entity_id=str(entity_id),
        details=details,
    )


# ---------------------------------------------------------------------- checks across entities


_PATH = re.compile(r"\b(models|sources|demand|policy\.budgets)\[(\d+)\]")
_DOCUMENT_KINDS = {"models": "model", "sources": "source", "demand": "demand", "policy.budgets": "budget"}
_CONFLICTS = ("duplicate name", "second demand", "a second budget")


@dataclass
class _Document:
    """The stored workloads as a fleet document (plain data), each entry with its entity's label."""

    entries: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def as_document(self) -> dict[str, Any]:
        return {
            "models": [entry for _, entry in self.entries["models"]],
            "sources": [entry for _, entry in self.entries["sources"]],
            "demand": [entry for _, entry in self.entries["demand"]],
            "policy": {"budgets": [entry for _, entry in self.entries["policy.budgets"]]},
        }

    def label(self, key: str, index: int) -> str:
        labels = self.entries.get(key, [])
        return labels[index][0] if index < len(labels) else f"{key}[{index}]"

    def translate(self, problem: str) -> tuple[str, str]:
        """A reference problem (``demand[3].model: unknown model 'x'``) as (where, message), every document
        path in it replaced by the label of the entity at that place."""
        where, _, message = problem.partition(": ")
        found = _PATH.match(where)
        if found is not None:
            where = self.label(found.group(1), int(found.group(2))) + where[found.end() :]
        message = _PATH.sub(lambda m: self.label(m.group(1), int(m.group(2))), message)
        return where, message


def _stored_document(session: Session) -> _Document:
    document = _Document()
    models = session.scalars(
        sa.select(ServedModelRow).options(selectinload(ServedModelRow.profiles)).order_by(ServedModelRow.id)
    ).all()
    document.entries["models"] = [
        (f"model {row.id} ({row.name})", {"name": row.name, "team": row.team}) for row in models
    ]
    sources = session.execute(
        sa.select(DemandSourceRow.id, DemandSourceRow.name).order_by(DemandSourceRow.id)
    )
    document.entries["sources"] = [(f"source {i} ({name})", {"name": name}) for i, name in sources]
    demand = session.execute(
        sa.select(DemandRow.id, ServedModelRow.name, DemandSourceRow.name)
        .join(DemandRow.model)
        .join(DemandRow.source)
        .order_by(DemandRow.id)
    )
    document.entries["demand"] = [
        (f"demand {i} ({model} from {source})", {"model": model, "source": source})
        for i, model, source in demand
    ]
    budgets = session.execute(sa.select(BudgetRow.id, BudgetRow.scope, BudgetRow.team).order_by(BudgetRow.id))
    document.entries["policy.budgets"] = [
        (f"budget {i} ({team or scope.value})", {"scope": scope.value, "team": team})
        for i, scope, team in budgets
    ]
    return document


def check_references(
    session: Session,
    key: str,
    *,
    entity_id: int | None,
    entry: dict[str, Any] | None,
    what: str,
) -> None:
    """Run the fleet document's checks across entities on the stored workloads with one change: the
    entity ``entity_id`` of kind ``key`` (a fleet document key: models, sources, demand, policy.budgets)
    replaced by ``entry`` (None: deleted; ``entity_id`` None: ``entry`` added).

    Problems the change brings to the entity itself: 422, or 409 for a name (or a demand pair, or a
    budget scope) taken, naming the field under ``body``; problems it brings to other entities (a budget
    left without a team, demand naming a deleted model): 409 naming them.
    """
    document = _stored_document(session)
    before = {document.translate(problem) for problem in FleetSpec.reference_problems(document.as_document())}
    entries = document.entries[key]
    label = what
    if entity_id is not None:
        prefix = f"{_DOCUMENT_KINDS[key]} {entity_id} ("
        position = next((i for i, (name, _) in enumerate(entries) if name.startswith(prefix)), None)
        if position is not None:
            label = entries.pop(position)[0]
    if entry is not None:
        entries.append((label, entry))  # last, so a duplicate is reported on it
    own: list[FieldProblem] = []
    others: list[FieldProblem] = []
    for problem in FleetSpec.reference_problems(document.as_document()):
        where, message = document.translate(problem)
        if (where, message) in before:
            continue  # there before this change: not this write's to report
        if entry is not None and where.startswith(label):
            own.append(FieldProblem("body" + where[len(label) :], message))
        else:
            others.append(FieldProblem(where, message))
    if others:
        raise WorkloadConflictError(
            f"{what}: the change would break what refers to it: "
            + "; ".join(f"{p.field}: {p.message}" for p in others),
            others,
        )
    if own:
        conflict = any(p.message.startswith(_CONFLICTS) for p in own)
        kind = WorkloadConflictError if conflict else WorkloadInvalidError
        raise kind(f"{what}: " + "; ".join(f"{p.field}: {p.message}" for p in own), own)


# -------------------------------------------------------------------------------------------- models


def model_view(row: ServedModelRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "team": row.team,
        "params_b": row.params_b,
        "latency_slo_ms": row.latency_slo_ms,
        "redundancy": row.redundancy.value,
        "redundancy_share": row.redundancy_share,
        "max_spot_share": row.max_spot_share,
        "profiles": [
            {
                "gpu_type": profile.gpu_type.name.value,
                "gpus_per_replica": profile.gpus_per_replica,
                "tokens_per_s_per_replica": profile.tokens_per_s_per_replica,
                "service_latency_ms": profile.service_latency_ms,
                "source": profile.source,
            }
            for profile in sorted(row.profiles, key=lambda p: p.gpu_type.name.value)
        ],
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _models_query() -> sa.Select[ServedModelRow]:
    return sa.select(ServedModelRow).options(
        selectinload(ServedModelRow.profiles).joinedload(ModelProfileRow.gpu_type)
    )


def list_models(session: Session, *, team: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    query = _models_query().order_by(ServedModelRow.id)
    if team is not None:
        query = query.where(ServedModelRow.team == team)
    return [model_view(row) for row in _page(session, query, limit=limit, offset=offset)]


def get_model(session: Session, model_id: int) -> dict[str, Any]:
    row = session.scalar(_models_query().where(ServedModelRow.id == model_id))
    if row is None:
        raise WorkloadNotFoundError(f"no model {model_id}")
    return model_view(row)


def _gpu_type_rows(session: Session) -> dict[GpuType, GpuTypeRow]:
    rows = {row.name: row for row in session.scalars(sa.select(GpuTypeRow))}
    if len(rows) < len(GpuType):
        reference = ReferenceData(session)
        reference.ensure_gpu_types()
        session.flush()
        rows = dict(reference.gpu_types)
    return rows


def _write_model(
    session: Session,
    row: ServedModelRow,
    model: Model,
    now: dt.datetime,
    gpu_types: dict[GpuType, GpuTypeRow],
) -> None:
    write_model(session, row, model, now=now, gpu_types=gpu_types)
    session.flush()


def _model_entry(model: Model) -> dict[str, Any]:
    return {"name": model.name, "team": model.team}


def create_model(session: Session, model: Model, *, actor: str, now: dt.datetime) -> dict[str, Any]:
    lock_reference_data(session)
    check_references(
        session, "models", entity_id=None, entry=_model_entry(model), what=f"model {model.name!r}"
    )
    gpu_types = _gpu_type_rows(session)  # read (and flushed) before the new row is in the session
    row = ServedModelRow(name=model.name, created_at=now)
    session.add(row)
    _write_model(session, row, model, now, gpu_types)
    view = get_model(session, row.id)
    _audit(session, actor, "created", "model", row.id, {"model": view})
    return view


def update_model(
    session: Session, model_id: int, model: Model, *, if_match: str, actor: str, now: dt.datetime
) -> dict[str, Any]:
    lock_reference_data(session)
    row = _get(session, ServedModelRow, "model", model_id, for_update=True)
    before = get_model(session, model_id)
    check_tag("model", model_id, before, if_match)
    check_references(
        session, "models", entity_id=model_id, entry=_model_entry(model), what=f"model {model_id}"
    )
    _write_model(session, row, model, now, _gpu_type_rows(session))
    session.expire(row)
    view = get_model(session, model_id)
    _audit(session, actor, "updated", "model", model_id, {"before": before, "after": view})
    return view


def _model_references(session: Session, model_id: int) -> list[FieldProblem]:
    found: list[FieldProblem] = []
    demand = session.execute(
        sa.select(DemandRow.id, DemandSourceRow.name)
        .join(DemandRow.source)
        .where(DemandRow.model_id == model_id)
        .order_by(DemandRow.id)
    ).all()
    found.extend(FieldProblem(f"demand {i}", f"demand for this model from {source}") for i, source in demand)
    routed = session.scalars(sa.select(PlanRouteRow.plan_id).where(PlanRouteRow.model_id == model_id))
    placed = session.scalars(
        sa.select(PlanPlacementRow.plan_id)
        .join(PlanReplicaRow, PlanReplicaRow.placement_id == PlanPlacementRow.id)
        .where(PlanReplicaRow.model_id == model_id)
    )
    plan_ids = sorted(set(routed) | set(placed))
    if plan_ids:
        found.append(FieldProblem("plans", "plans " + ", ".join(map(str, plan_ids)) + " place or route it"))
    if session.scalar(sa.select(sa.func.count()).where(FleetReplicaRow.model_id == model_id)):
        found.append(FieldProblem("fleet", "the running fleet serves it"))
    return found


def delete_model(session: Session, model_id: int, *, if_match: str, actor: str) -> None:
    lock_reference_data(session)
    row = _get(session, ServedModelRow, "model", model_id, for_update=True)
    before = get_model(session, model_id)
    check_tag("model", model_id, before, if_match)
    references = _model_references(session, model_id)
    if references:
        raise WorkloadConflictError(
            f"model {model_id} ({row.name}) is still referenced: "
            + "; ".join(f"{p.field}: {p.message}" for p in references)
            + " (delete its demand first; a model plans or the fleet use stays)",
            references,
        )
    check_references(session, "models", entity_id=model_id, entry=None, what=f"model {model_id} ({row.name})")
    session.delete(row)
    session.flush()
    _audit(session, actor, "deleted", "model", model_id, {"model": before})


# ------------------------------------------------------------------------------------ demand sources


def source_view(row: DemandSourceRow) -> dict[str, Any]:
    anchor = row.anchor_region
    return {
        "id": row.id,
        "name": row.name,
        "lat": row.lat,
        "lon": row.lon,
        "country": row.country,
        "jurisdictions": sorted(row.jurisdictions),
        "residency": sorted(row.residency) if row.residency is not None else None,
        "anchor_region": f"{anchor.provider.name}/{anchor.code}" if anchor is not None else None,
    }


def _sources_query() -> sa.Select[DemandSourceRow]:
    return sa.select(DemandSourceRow).options(selectinload(DemandSourceRow.anchor_region))


def list_sources(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    rows = _page(session, _sources_query().order_by(DemandSourceRow.id), limit=limit, offset=offset)
    return [source_view(row) for row in rows]


def get_source(session: Session, source_id: int) -> dict[str, Any]:
    row = session.scalar(_sources_query().where(DemandSourceRow.id == source_id))
    if row is None:
        raise WorkloadNotFoundError(f"no demand source {source_id}")
    return source_view(row)


def _write_source(session: Session, row: DemandSourceRow, source: DemandSource) -> None:
    problems = source_store_problems(session, [("body", source)])
    if problems:
        raise WorkloadInvalidError(
            f"demand source {source.name!r}: "
            + "; ".join(f"{where}: {message}" for where, message in problems),
            [FieldProblem(where, message) for where, message in problems],
        )
    anchors = region_rows_by_key(session, [source.anchor_region]) if source.anchor_region else {}
    row.name = source.name
    row.lat = source.lat
    row.lon = source.lon
    row.country = source.country
    row.jurisdictions = sorted(source.jurisdictions)
    row.residency = sorted(source.residency) if source.residency is not None else None
    row.anchor_region = anchors[source.anchor_region] if source.anchor_region else None
    session.flush()


def create_source(session: Session, source: DemandSource, *, actor: str, now: dt.datetime) -> dict[str, Any]:
    lock_reference_data(session)
    check_references(
        session, "sources", entity_id=None, entry={"name": source.name}, what=f"demand source {source.name!r}"
    )
    row = DemandSourceRow(name=source.name)
    _write_source(session, row, source)
    session.add(row)
    session.flush()
    view = get_source(session, row.id)
    _audit(session, actor, "created", "source", row.id, {"source": view})
    return view


def update_source(
    session: Session, source_id: int, source: DemandSource, *, if_match: str, actor: str, now: dt.datetime
) -> dict[str, Any]:
    lock_reference_data(session)
    row = _get(session, DemandSourceRow, "demand source", source_id, for_update=True)
    before = get_source(session, source_id)
    check_tag("demand source", source_id, before, if_match)
    check_references(
        session,
        "sources",
        entity_id=source_id,
        entry={"name": source.name},
        what=f"demand source {source_id}",
    )
    _write_source(session, row, source)
    view = get_source(session, source_id)
    _audit(session, actor, "updated", "source", source_id, {"before": before, "after": view})
    return view


def delete_source(session: Session, source_id: int, *, if_match: str, actor: str) -> None:
    lock_reference_data(session)
    row = _get(session, DemandSourceRow, "demand source", source_id, for_update=True)
    before = get_source(session, source_id)
    check_tag("demand source", source_id, before, if_match)
    references = [
        FieldProblem(f"demand {i}", f"demand for {model} from this source")
        for i, model in session.execute(
            sa.select(DemandRow.id, ServedModelRow.name)
            .join(DemandRow.model)
            .where(DemandRow.source_id == source_id)
            .order_by(DemandRow.id)
        )
    ]
    plan_ids = sorted(
        session.scalars(sa.select(PlanRouteRow.plan_id).where(PlanRouteRow.source_id == source_id).distinct())
    )
    if plan_ids:
        references.append(
            FieldProblem("plans", "plans " + ", ".join(map(str, plan_ids)) + " route its traffic")
        )
    if references:
        raise WorkloadConflictError(
            f"demand source {source_id} ({row.name}) is still referenced: "
            + "; ".join(f"{p.field}: {p.message}" for p in references)
            + " (delete its demand first; a source plans route stays)",
            references,
        )
    session.delete(row)
    session.flush()
    _audit(session, actor, "deleted", "source", source_id, {"source": before})


# ---------------------------------------------------------------------------------------------- demand


def demand_view(row: DemandRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "model": row.model.name,
        "model_id": row.model_id,
        "source": row.source.name,
        "source_id": row.source_id,
        "tokens_per_s": row.tokens_per_s,
        "updated_at": _iso(row.updated_at),
    }


def _demand_query() -> sa.Select[DemandRow]:
    return sa.select(DemandRow).options(selectinload(DemandRow.model), selectinload(DemandRow.source))


def list_demand(
    session: Session, *, model: str | None, source: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    query = _demand_query().order_by(DemandRow.id)
    if model is not None:
        query = query.where(DemandRow.model.has(ServedModelRow.name == model))
    if source is not None:
        query = query.where(DemandRow.source.has(DemandSourceRow.name == source))
    return [demand_view(row) for row in _page(session, query, limit=limit, offset=offset)]


def get_demand(session: Session, demand_id: int) -> dict[str, Any]:
    row = session.scalar(_demand_query().where(DemandRow.id == demand_id))
    if row is None:
        raise WorkloadNotFoundError(f"no demand {demand_id}")
    return demand_view(row)


def _write_demand(session: Session, row: DemandRow, demand: Demand, now: dt.datetime) -> None:
    # check_references has made sure both names resolve.
    row.model_id = session.scalars(
        sa.select(ServedModelRow.id).where(ServedModelRow.name == demand.model)
    ).one()
    row.source_id = session.scalars(
        sa.select(DemandSourceRow.id).where(DemandSourceRow.name == demand.source)
    ).one()
    row.tokens_per_s = demand.tokens_per_s
    row.updated_at = now


def _demand_entry(demand: Demand) -> dict[str, Any]:
    return {"model": demand.model, "source": demand.source}


def create_demand(session: Session, demand: Demand, *, actor: str, now: dt.datetime) -> dict[str, Any]:
    lock_reference_data(session)
    what = f"demand for {demand.model} from {demand.source}"
    check_references(session, "demand", entity_id=None, entry=_demand_entry(demand), what=what)
    row = DemandRow()
    _write_demand(session, row, demand, now)
    session.add(row)
    session.flush()
    view = get_demand(session, row.id)
    _audit(session, actor, "created", "demand", row.id, {"demand": view})
    return view


def update_demand(
    session: Session, demand_id: int, demand: Demand, *, if_match: str, actor: str, now: dt.datetime
) -> dict[str, Any]:
    lock_reference_data(session)
    row = _get(session, DemandRow, "demand", demand_id, for_update=True)
    before = get_demand(session, demand_id)
    check_tag("demand", demand_id, before, if_match)
    check_references(
        session, "demand", entity_id=demand_id, entry=_demand_entry(demand), what=f"demand {demand_id}"
    )
    _write_demand(session, row, demand, now)
    session.flush()
    session.expire(row)
    view = get_demand(session, demand_id)
    _audit(session, actor, "updated", "demand", demand_id, {"before": before, "after": view})
    return view


def delete_demand(session: Session, demand_id: int, *, if_match: str, actor: str) -> None:
    lock_reference_data(session)
    row = _get(session, DemandRow, "demand", demand_id, for_update=True)
    before = get_demand(session, demand_id)
    check_tag("demand", demand_id, before, if_match)
    session.delete(row)
    session.flush()
    _audit(session, actor, "deleted", "demand", demand_id, {"demand": before})


# -------------------------------------------------------------------------------------------- budgets


def budget_view(row: BudgetRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "scope": row.scope.value,
        "team": row.team,
        "limit_usd_per_month": str(micro_to_usd(row.limit_micro_usd_per_month)),
        "updated_at": _iso(row.updated_at),
    }


def list_budgets(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    rows = _page(session, sa.select(BudgetRow).order_by(BudgetRow.id), limit=limit, offset=offset)
    return [budget_view(row) for row in rows]


def get_budget(session: Session, budget_id: int) -> dict[str, Any]:
    return budget_view(_get(session, BudgetRow, "budget", budget_id, for_update=False))


def _budget_entry(budget: BudgetSpec) -> dict[str, Any]:
    return {"scope": budget.scope.value, "team": budget.team}


def _write_budget(row: BudgetRow, budget: BudgetSpec, now: dt.datetime) -> None:
    domain = budget.to_domain()
    row.scope = domain.scope
    row.team = domain.team
    row.limit_micro_usd_per_month = domain.limit_micro_usd_per_month
    row.updated_at = now


def create_budget(session: Session, budget: BudgetSpec, *, actor: str, now: dt.datetime) -> dict[str, Any]:
    lock_reference_data(session)
    what = f"budget for {budget.team or budget.scope.value}"
    check_references(session, "policy.budgets", entity_id=None, entry=_budget_entry(budget), what=what)
    row = BudgetRow()
    _write_budget(row, budget, now)
    session.add(row)
    session.flush()
    view = budget_view(row)
    _audit(session, actor, "created", "budget", row.id, {"budget": view})
    return view


def update_budget(
    session: Session, budget_id: int, budget: BudgetSpec, *, if_match: str, actor: str, now: dt.datetime
) -> dict[str, Any]:
    lock_reference_data(session)
    row = _get(session, BudgetRow, "budget", budget_id, for_update=True)
    before = budget_view(row)
    check_tag("budget", budget_id, before, if_match)
    check_references(
        session,
        "policy.budgets",
        entity_id=budget_id,
        entry=_budget_entry(budget),
        what=f"budget {budget_id}",
    )
    _write_budget(row, budget, now)
    session.flush()
    view = budget_view(row)
    _audit(session, actor, "updated", "budget", budget_id, {"before": before, "after": view})
    return view


def delete_budget(session: Session, budget_id: int, *, if_match: str, actor: str) -> None:
    lock_reference_data(session)
    row = _get(session, BudgetRow, "budget", budget_id, for_update=True)
    before = budget_view(row)
    check_tag("budget", budget_id, before, if_match)
    session.delete(row)
    session.flush()
    _audit(session, actor, "deleted", "budget", budget_id, {"budget": before})


# ------------------------------------------------------------------------------------------- policies


def policy_view(row: PlanningPolicyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "active": row.active,
        "target_utilisation": row.target_utilisation,
        "churn": {
            "penalty_usd_per_replica_move": str(micro_to_usd(row.churn_penalty_micro_usd_per_replica)),
            "max_moved_share": row.churn_max_moved_share,
            "min_saving_share": row.churn_min_saving_share,
        },
        "updated_at": _iso(row.updated_at),
    }


def list_policies(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    rows = _page(
        session, sa.select(PlanningPolicyRow).order_by(PlanningPolicyRow.id), limit=limit, offset=offset
    )
    return [policy_view(row) for row in rows]


def get_policy(session: Session, policy_id: int) -> dict[str, Any]:
    return policy_view(_get(session, PlanningPolicyRow, "policy", policy_id, for_update=False))


def _check_policy_name(session: Session, name: str, policy_id: int | None) -> None:
    taken = session.scalar(
        sa.select(PlanningPolicyRow.id).where(
            PlanningPolicyRow.name == name, PlanningPolicyRow.id != (policy_id or -1)
        )
    )
    if taken is not None:
        raise WorkloadConflictError(
            f"policy {taken} is already named {name!r}",
            [FieldProblem("body.name", f"duplicate name {name!r}")],
        )


def _write_policy(
    session: Session, row: PlanningPolicyRow, knobs: PlanningKnobsSpec, active: bool | None, now: dt.datetime
) -> None:
    """Write the knobs; ``active`` True activates the policy (and deactivates the other), None keeps it."""
    if active is None:
        active = row.active
    if row.active and not active:
        raise WorkloadConflictError(
            f"policy {row.id} ({row.name}) is the active policy: activate another one instead",
            [FieldProblem("body.active", "one policy is always active; activate another one instead")],
        )
    churn = knobs.churn.to_domain()
    row.name = knobs.name
    row.target_utilisation = knobs.target_utilisation
    row.churn_penalty_micro_usd_per_replica = churn.penalty_micro_usd_per_replica_move
    row.churn_max_moved_share = churn.max_moved_share
    row.churn_min_saving_share = churn.min_saving_share
    row.updated_at = now
    if active and not row.active:
        # One active policy at a time (a partial unique index): deactivate the others first.
        session.execute(
            sa.update(PlanningPolicyRow)
            .where(PlanningPolicyRow.active.is_(True))
            .values(active=False, updated_at=now)
        )
        session.flush()
    row.active = active
    session.flush()


def create_policy(
    session: Session, knobs: PlanningKnobsSpec, *, active: bool | None, actor: str, now: dt.datetime
) -> dict[str, Any]:
    lock_reference_data(session)
    _check_policy_name(session, knobs.name, None)
    if (
        not active
        and session.scalar(sa.select(PlanningPolicyRow.id).where(PlanningPolicyRow.active.is_(True))) is None
    ):
        active = True  # the first policy is the active one
    row = PlanningPolicyRow(name=knobs.name, active=False, target_utilisation=knobs.target_utilisation)
    session.add(row)
    session.flush()
    _write_policy(session, row, knobs, active, now)
    view = policy_view(row)
    _audit(session, actor, "created", "policy", row.id, {"policy": view})
    return view


def update_policy(
    session: Session,
    policy_id: int,
    knobs: PlanningKnobsSpec,
    *,
    active: bool | None,
    if_match: str,
    actor: str,
    now: dt.datetime,
) -> dict[str, Any]:
    lock_reference_data(session)
    row = _get(session, PlanningPolicyRow, "policy", policy_id, for_update=True)
    before = policy_view(row)
    check_tag("policy", policy_id, before, if_match)
    _check_policy_name(session, knobs.name, policy_id)
    _write_policy(session, row, knobs, active, now)
    session.refresh(row)
    view = policy_view(row)
    _audit(session, actor, "updated", "policy", policy_id, {"before": before, "after": view})
    return view


def delete_policy(session: Session, policy_id: int, *, if_match: str, actor: str) -> None:
    lock_reference_data(session)
    row = _get(session, PlanningPolicyRow, "policy", policy_id, for_update=True)
    before = policy_view(row)
    check_tag("policy", policy_id, before, if_match)
    if row.active:
        raise WorkloadConflictError(
            f"policy {policy_id} ({row.name}) is the active policy: activate another one before deleting it",
            [FieldProblem(f"policy {policy_id}", "the active policy cannot be deleted")],
        )
    session.delete(row)
    session.flush()
    _audit(session, actor, "deleted", "policy", policy_id, {"policy": before})


# Every view as the API shows it; the keys a resource's entity tag covers are the view's.
VIEWS: dict[str, Callable[[Session, int], dict[str, Any]]] = {
    "model": get_model,
    "source": get_source,
    "demand": get_demand,
    "budget": get_budget,
    "policy": get_policy,
}
