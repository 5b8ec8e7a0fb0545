"""The database schema (SQLAlchemy 2.0 typed models).

Conventions: money is integer micro-USD (BIGINT), per hour unless the column says month; timestamps are
timezone-aware UTC; shares are floats in [0, 1]. Price and availability observations and the audit log
are append-only: a trigger created by the migrations refuses UPDATE and DELETE on them.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from scheduler.db.base import Base, BigId, enum_column_type
from solver.domain import (
    AvailabilityStatus,
    BudgetScope,
    Continent,
    GpuType,
    GpuVendor,
    ProviderKind,
    PurchaseOption,
    Redundancy,
    Region,
    ReservedTerm,
    Upfront,
)

# ------------------------------------------------------------------------------------------ statuses


class CollectionKind(StrEnum):
    CATALOG = "catalog"  # the shipped catalog or a price sheet, loaded as a whole
    COLLECT = "collect"  # a collector run against a provider's API


class CollectionStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some providers or rows failed; the rest was stored
    FAILED = "failed"


class PlanStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    PARTIALLY_APPLIED = "partially_applied"  # some actions succeeded, others failed or were cancelled
    STALE = "stale"  # its inputs moved before it was applied; re-plan instead


class ActionKind(StrEnum):
    LAUNCH = "launch"
    SHIFT_ROUTING = "shift_routing"
    TERMINATE = "terminate"


class ActionStatus(StrEnum):
    PENDING = "pending"  # stored, not yet sent
    SENT = "sent"  # sent at least once; the provider may or may not have acted (resume reconciles by tag)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # never sent: the plan was cancelled or an earlier phase failed


class InstanceRecordState(StrEnum):
    """What the fleet table knows of one cloud instance."""

    PENDING = "pending"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"  # by gpuplan
    PREEMPTED = "preempted"  # reclaimed by the provider (spot)
    GONE = "gone"  # missing from the provider's inventory (deleted by hand, or lost)
    INTERRUPTED = "interrupted"  # the provider warned it will reclaim it (an interruption notice): replaced


class JobRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped at a checkpoint by a shutdown (SIGTERM); the next run goes on


class SolveJobStatus(StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # claimed by a worker, which renews its heartbeat while it solves
    DONE = "done"  # solved and stored as a plan (``plan_id``)
    FAILED = "failed"  # no plan: infeasible, no plan in time, or an error; ``diagnosis`` says why


class DisruptionKind(StrEnum):
    PREEMPTED = "preempted"  # the instance was reclaimed
    INTERRUPTION_NOTICE = "interruption_notice"  # the provider warns it will reclaim it (AWS: 2 minutes)
    GONE = "gone"  # reconciliation found it missing


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ----------------------------------------------------------------------------------------- reference


class ProviderRow(Base):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[ProviderKind] = mapped_column(enum_column_type(ProviderKind, "provider_kind"))
    display_name: Mapped[str] = mapped_column(sa.String(200))
    pricing_api: Mapped[str] = mapped_column(sa.String(200), default="")

    regions: Mapped[list[RegionRow]] = relationship(back_populates="provider")


class RegionRow(Base):
    __tablename__ = "regions"
    __table_args__ = (
        sa.UniqueConstraint("provider_id", "code"),
        sa.CheckConstraint("lat >= -90 AND lat <= 90", name="lat_range"),
        sa.CheckConstraint("lon >= -180 AND lon <= 180", name="lon_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(sa.ForeignKey("providers.id"))
    code: Mapped[str] = mapped_column(sa.String(100))
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    city: Mapped[str] = mapped_column(sa.String(200), default="")
    country: Mapped[str] = mapped_column(sa.String(2))
    continent: Mapped[Continent] = mapped_column(enum_column_type(Continent, "continent"))
    lat: Mapped[float]
    lon: Mapped[float]
    jurisdictions: Mapped[list[str]]
    location_precision: Mapped[str] = mapped_column(sa.String(16))
    location_source: Mapped[str] = mapped_column(sa.Text, default="")

    provider: Mapped[ProviderRow] = relationship(back_populates="regions")

    def to_domain(self) -> Region:
        """The region as the solver and the collectors know it (loads ``provider``)."""
        return Region(
            provider=self.provider.name,
            code=self.code,
            display_name=self.display_name,
            city=self.city,
            country=self.country,
            continent=self.continent,
            lat=self.lat,
            lon=self.lon,
            jurisdictions=frozenset(self.jurisdictions),
        )


class GpuTypeRow(Base):
    __tablename__ = "gpu_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[GpuType] = mapped_column(enum_column_type(GpuType, "gpu_type"), unique=True)
    vendor: Mapped[GpuVendor] = mapped_column(enum_column_type(GpuVendor, "gpu_vendor"))
    memory_gib: Mapped[int] = mapped_column(sa.CheckConstraint("memory_gib > 0", name="memory_positive"))
    memory_bandwidth_gbps: Mapped[int]


class InstanceTypeRow(Base):
    __tablename__ = "instance_types"
    __table_args__ = (
        sa.UniqueConstraint("provider_id", "name"),
        sa.CheckConstraint("gpu_count > 0", name="gpu_count_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(sa.ForeignKey("providers.id"))
    name: Mapped[str] = mapped_column(sa.String(120))
    gpu_type_id: Mapped[int] = mapped_column(sa.ForeignKey("gpu_types.id"))
    gpu_count: Mapped[int]
    vcpus: Mapped[float | None]
    memory_gib: Mapped[float | None]

    provider: Mapped[ProviderRow] = relationship()
    gpu_type: Mapped[GpuTypeRow] = relationship()


# --------------------------------------------------------------------------------- offers and prices


class CollectionRunRow(Base):
    __tablename__ = "collection_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[CollectionKind] = mapped_column(enum_column_type(CollectionKind, "collection_kind"))
    source: Mapped[str] = mapped_column(sa.String(200))
    started_at: Mapped[dt.datetime] = mapped_column(default=_now)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[CollectionStatus] = mapped_column(
        enum_column_type(CollectionStatus, "collection_status"), default=CollectionStatus.RUNNING
    )
    offers_seen: Mapped[int] = mapped_column(default=0)
    observations_added: Mapped[int] = mapped_column(default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    errors: Mapped[list[CollectionErrorRow]] = relationship(
        back_populates="run", order_by="CollectionErrorRow.id"
    )


class CollectionErrorRow(Base):
    __tablename__ = "collection_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("collection_runs.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str | None] = mapped_column(sa.String(64))
    location: Mapped[str] = mapped_column(sa.String(400), default="")
    message: Mapped[str] = mapped_column(sa.Text)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=_now)

    run: Mapped[CollectionRunRow] = relationship(back_populates="errors")


class OfferRow(Base):
    """An offer's identity and its latest known state; prices themselves live in price_observations."""

    __tablename__ = "offers"
    __table_args__ = (
        sa.Index("ix_offers_region_id_purchase_option", "region_id", "purchase_option"),
        sa.CheckConstraint(
            "latest_price_micro_usd IS NULL OR latest_price_micro_usd > 0", name="latest_price_positive"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(400), unique=True)
    instance_type_id: Mapped[int] = mapped_column(sa.ForeignKey("instance_types.id"), index=True)
    region_id: Mapped[int] = mapped_column(sa.ForeignKey("regions.id"))
    zone: Mapped[str] = mapped_column(sa.String(100), default="")
    purchase_option: Mapped[PurchaseOption] = mapped_column(
        enum_column_type(PurchaseOption, "purchase_option")
    )
    term: Mapped[ReservedTerm | None] = mapped_column(enum_column_type(ReservedTerm, "reserved_term"))
    upfront: Mapped[Upfront | None] = mapped_column(enum_column_type(Upfront, "upfront"))
    flags: Mapped[list[str]] = mapped_column(default=list)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    first_seen_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    stale_since: Mapped[dt.datetime | None]
    # Denormalised from price_observations by the ingest service, for the planner's snapshot query.
    latest_price_micro_usd: Mapped[int | None] = mapped_column(sa.BigInteger)
    latest_observed_at: Mapped[dt.datetime | None]

    instance_type: Mapped[InstanceTypeRow] = relationship()
    region: Mapped[RegionRow] = relationship()


class PriceObservationRow(Base):
    """Append-only history: one price of one offer at one time from one source."""

    __tablename__ = "price_observations"
    __table_args__ = (
        # Also the index behind "latest price per offer" (offer_id, observed_at DESC scans).
        sa.UniqueConstraint("offer_id", "observed_at", "source"),
        sa.CheckConstraint("price_micro_usd_per_hour > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    offer_id: Mapped[int] = mapped_column(sa.ForeignKey("offers.id"))
    observed_at: Mapped[dt.datetime]
    price_micro_usd_per_hour: Mapped[int] = mapped_column(sa.BigInteger)
    source: Mapped[str] = mapped_column(sa.String(200))
    collection_run_id: Mapped[int] = mapped_column(sa.ForeignKey("collection_runs.id"), index=True)


class AvailabilityObservationRow(Base):
    """Append-only history of what a provider offers where, and how much of it."""

    __tablename__ = "availability_observations"
    __table_args__ = (
        sa.UniqueConstraint("instance_type_id", "region_id", "zone", "observed_at", "source"),
        sa.CheckConstraint(
            "available_instances IS NULL OR available_instances >= 0", name="available_nonneg"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_type_id: Mapped[int] = mapped_column(sa.ForeignKey("instance_types.id"))
    region_id: Mapped[int] = mapped_column(sa.ForeignKey("regions.id"), index=True)
    zone: Mapped[str] = mapped_column(sa.String(100), default="")
    observed_at: Mapped[dt.datetime]
    status: Mapped[AvailabilityStatus] = mapped_column(
        enum_column_type(AvailabilityStatus, "availability_status")
    )
    available_instances: Mapped[int | None]
    detail: Mapped[str] = mapped_column(sa.Text, default="")
    source: Mapped[str] = mapped_column(sa.String(200))
    collection_run_id: Mapped[int] = mapped_column(sa.ForeignKey("collection_runs.id"), index=True)


class SpotPlacementScoreRow(Base):
    """Append-only history of a provider's own spot success scores (AWS GetSpotPlacementScores, 1-10)."""

    __tablename__ = "spot_placement_scores"
    __table_args__ = (
        sa.UniqueConstraint(
            "instance_type_id",
            "region_id",
            "zone",
            "target_instances",
            "observed_at",
            "source",
            name="uq_spot_placement_scores_observation",  # the generated name is too long for PostgreSQL
        ),
        sa.CheckConstraint("score >= 1 AND score <= 10", name="score_range"),
        sa.CheckConstraint("target_instances > 0", name="target_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    instance_type_id: Mapped[int] = mapped_column(sa.ForeignKey("instance_types.id"))
    region_id: Mapped[int] = mapped_column(sa.ForeignKey("regions.id"), index=True)
    zone: Mapped[str] = mapped_column(sa.String(100), default="")
    """Empty when the score is for the whole region."""
    score: Mapped[int]
    target_instances: Mapped[int]
    observed_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(sa.String(200))
    collection_run_id: Mapped[int] = mapped_column(sa.ForeignKey("collection_runs.id"), index=True)


class DiscountRuleRow(Base):
    """One rule of the active discount overlay (percent off list); ``gpuplan discounts load`` replaces all."""

    __tablename__ = "discount_rules"
    __table_args__ = (
        sa.CheckConstraint("percent_off_bp >= 0 AND percent_off_bp < 10000", name="percent_range"),
        sa.CheckConstraint("family IS NULL OR instance_type IS NULL", name="family_or_instance_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int]
    """Order in the file: the first listed wins between equally specific rules."""
    provider: Mapped[str] = mapped_column(sa.String(64))
    family: Mapped[str | None] = mapped_column(sa.String(120))
    instance_type: Mapped[str | None] = mapped_column(sa.String(120))
    purchase_option: Mapped[PurchaseOption | None] = mapped_column(
        enum_column_type(PurchaseOption, "purchase_option")
    )
    percent_off_bp: Mapped[int]
    """Basis points off the list price (1250 = 12.5 %)."""
    note: Mapped[str] = mapped_column(sa.Text, default="")
    source: Mapped[str] = mapped_column(sa.String(400))
    loaded_at: Mapped[dt.datetime]


class CommitmentRow(Base):
    """Reserved capacity already bought: sunk cost, used first by the planner."""

    __tablename__ = "commitments"
    __table_args__ = (sa.CheckConstraint("instances > 0", name="instances_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(sa.ForeignKey("offers.id"), index=True)
    instances: Mapped[int]
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    note: Mapped[str] = mapped_column(sa.Text, default="")

    offer: Mapped[OfferRow] = relationship()


# ------------------------------------------------------------------------------- workloads and demand


class ServedModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (
        sa.CheckConstraint("latency_slo_ms > 0", name="slo_positive"),
        sa.CheckConstraint("redundancy_share > 0 AND redundancy_share <= 1", name="redundancy_share_range"),
        sa.CheckConstraint("max_spot_share >= 0 AND max_spot_share <= 1", name="spot_share_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    team: Mapped[str] = mapped_column(sa.String(64), index=True)
    params_b: Mapped[float | None]
    latency_slo_ms: Mapped[int]
    redundancy: Mapped[Redundancy] = mapped_column(enum_column_type(Redundancy, "redundancy"))
    redundancy_share: Mapped[float] = mapped_column(default=1.0)
    max_spot_share: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)

    profiles: Mapped[list[ModelProfileRow]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="ModelProfileRow.id"
    )


class ModelProfileRow(Base):
    __tablename__ = "model_profiles"
    __table_args__ = (
        sa.UniqueConstraint("model_id", "gpu_type_id"),
        sa.CheckConstraint("gpus_per_replica > 0", name="gpus_positive"),
        sa.CheckConstraint("tokens_per_s_per_replica > 0", name="throughput_positive"),
        sa.CheckConstraint("service_latency_ms >= 0", name="latency_nonneg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"))
    gpu_type_id: Mapped[int] = mapped_column(sa.ForeignKey("gpu_types.id"))
    gpus_per_replica: Mapped[int]
    tokens_per_s_per_replica: Mapped[int]
    service_latency_ms: Mapped[int]
    source: Mapped[str] = mapped_column(sa.Text, default="")

    model: Mapped[ServedModelRow] = relationship(back_populates="profiles")
    gpu_type: Mapped[GpuTypeRow] = relationship()


class DemandSourceRow(Base):
    __tablename__ = "demand_sources"
    __table_args__ = (
        sa.CheckConstraint("lat >= -90 AND lat <= 90", name="lat_range"),
        sa.CheckConstraint("lon >= -180 AND lon <= 180", name="lon_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    lat: Mapped[float]
    lon: Mapped[float]
    country: Mapped[str] = mapped_column(sa.String(2))
    jurisdictions: Mapped[list[str]]
    residency: Mapped[list[str] | None]
    """Jurisdiction tags the traffic may be served in; NULL means anywhere."""
    anchor_region_id: Mapped[int | None] = mapped_column(sa.ForeignKey("regions.id"))

    anchor_region: Mapped[RegionRow | None] = relationship()


class DemandRow(Base):
    __tablename__ = "demands"
    __table_args__ = (
        sa.UniqueConstraint("model_id", "source_id"),
        sa.CheckConstraint("tokens_per_s > 0", name="tokens_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("demand_sources.id", ondelete="CASCADE"), index=True)
    tokens_per_s: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)

    model: Mapped[ServedModelRow] = relationship()
    source: Mapped[DemandSourceRow] = relationship()


# --------------------------------------------------------------------------------- budgets, policies


class BudgetRow(Base):
    __tablename__ = "budgets"
    __table_args__ = (
        sa.UniqueConstraint("scope", "team"),
        # NULL team would not collide in the unique constraint above: at most one global budget.
        sa.Index(
            "uq_budgets_one_global",
            "scope",
            unique=True,
            sqlite_where=sa.text("team IS NULL"),
            postgresql_where=sa.text("team IS NULL"),
        ),
        sa.CheckConstraint("limit_micro_usd_per_month > 0", name="limit_positive"),
        sa.CheckConstraint("(scope = 'team') = (team IS NOT NULL)", name="team_matches_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[BudgetScope] = mapped_column(enum_column_type(BudgetScope, "budget_scope"))
    team: Mapped[str | None] = mapped_column(sa.String(64))
    limit_micro_usd_per_month: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)


class PlanningPolicyRow(Base):
    """Global planning knobs; exactly one row is active."""

    __tablename__ = "planning_policies"
    __table_args__ = (
        sa.Index(
            "uq_planning_policies_one_active",
            "active",
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        ),
        sa.CheckConstraint("target_utilisation > 0 AND target_utilisation <= 1", name="utilisation_range"),
        sa.CheckConstraint("churn_max_moved_share >= 0 AND churn_max_moved_share <= 1", name="moved_range"),
        sa.CheckConstraint("churn_min_saving_share >= 0 AND churn_min_saving_share < 1", name="saving_range"),
        sa.CheckConstraint("churn_penalty_micro_usd_per_replica >= 0", name="penalty_nonneg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    active: Mapped[bool] = mapped_column(default=False)
    target_utilisation: Mapped[float]
    churn_penalty_micro_usd_per_replica: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    churn_max_moved_share: Mapped[float] = mapped_column(default=1.0)
    churn_min_saving_share: Mapped[float] = mapped_column(default=0.0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)


# -------------------------------------------------------------------------------------------- plans


class PlanRow(Base):
    __tablename__ = "plans"
    __table_args__ = (
        sa.CheckConstraint("cost_micro_usd_per_hour >= 0", name="cost_nonneg"),
        sa.Index("ix_plans_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[PlanStatus] = mapped_column(enum_column_type(PlanStatus, "plan_status"))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    solver_status: Mapped[str] = mapped_column(sa.String(32))
    cost_micro_usd_per_hour: Mapped[int] = mapped_column(sa.BigInteger)
    lower_bound_micro_usd_per_hour: Mapped[int | None] = mapped_column(sa.BigInteger)
    gap: Mapped[float | None]
    wall_time_ms: Mapped[int | None]
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What the plan was computed from (price snapshot, workloads, policies), to reproduce it."""
    explanations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    superseded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"))
    decided_by: Mapped[str | None] = mapped_column(sa.String(200))
    decided_at: Mapped[dt.datetime | None]
    problem_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """SHA-256 of the problem's canonical JSON: plans with the same hash had the same inputs."""
    trigger: Mapped[str] = mapped_column(sa.String(32), default="manual", server_default="manual")
    """Why the plan was made: manual, rebalance, preemption, capacity (an offer ran out), reconcile."""
    diff: Mapped[dict[str, Any] | None]
    """The plan against the fleet it was computed from (scheduler.services.plandiff.PlanDiff)."""
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    """Why the plan is in its state (stale: which input moved; failed: which actions failed)."""
    applied_at: Mapped[dt.datetime | None]

    placements: Mapped[list[PlanPlacementRow]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="PlanPlacementRow.id"
    )
    routes: Mapped[list[PlanRouteRow]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="PlanRouteRow.id"
    )


class PlanPlacementRow(Base):
    __tablename__ = "plan_placements"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "offer_id"),
        sa.CheckConstraint("instances > 0", name="instances_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="CASCADE"))
    offer_id: Mapped[int] = mapped_column(sa.ForeignKey("offers.id"), index=True)
    instances: Mapped[int]
    price_micro_usd_per_hour: Mapped[int] = mapped_column(sa.BigInteger)
    """The offer's price per instance-hour the plan was computed with."""

    plan: Mapped[PlanRow] = relationship(back_populates="placements")
    offer: Mapped[OfferRow] = relationship()
    replicas: Mapped[list[PlanReplicaRow]] = relationship(
        back_populates="placement", cascade="all, delete-orphan", order_by="PlanReplicaRow.id"
    )


class PlanReplicaRow(Base):
    __tablename__ = "plan_replicas"
    __table_args__ = (
        sa.UniqueConstraint("placement_id", "model_id"),
        sa.CheckConstraint("replicas > 0", name="replicas_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    placement_id: Mapped[int] = mapped_column(sa.ForeignKey("plan_placements.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"), index=True)
    replicas: Mapped[int]

    placement: Mapped[PlanPlacementRow] = relationship(back_populates="replicas")
    model: Mapped[ServedModelRow] = relationship()


class PlanRouteRow(Base):
    __tablename__ = "plan_routes"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "model_id", "source_id", "region_id"),
        sa.CheckConstraint("share > 0 AND share <= 1", name="share_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"), index=True)
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("demand_sources.id"), index=True)
    region_id: Mapped[int] = mapped_column(sa.ForeignKey("regions.id"), index=True)
    share: Mapped[float]

    plan: Mapped[PlanRow] = relationship(back_populates="routes")


# -------------------------------------------------------------------------------- fleet, provisioning


class FleetPlacementRow(Base):
    """What runs now on one offer, as the provisioners report it."""

    __tablename__ = "fleet_placements"
    __table_args__ = (sa.CheckConstraint("instances >= 0", name="instances_nonneg"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(sa.ForeignKey("offers.id"), unique=True)
    instances: Mapped[int]
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)

    offer: Mapped[OfferRow] = relationship()
    replicas: Mapped[list[FleetReplicaRow]] = relationship(
        back_populates="placement", cascade="all, delete-orphan", order_by="FleetReplicaRow.id"
    )


class FleetReplicaRow(Base):
    __tablename__ = "fleet_replicas"
    __table_args__ = (
        sa.UniqueConstraint("placement_id", "model_id"),
        sa.CheckConstraint("replicas > 0", name="replicas_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    placement_id: Mapped[int] = mapped_column(sa.ForeignKey("fleet_placements.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"), index=True)
    replicas: Mapped[int]

    placement: Mapped[FleetPlacementRow] = relationship(back_populates="replicas")


class ProvisioningActionRow(Base):
    """One change a plan makes to the fleet. Every action of a plan is stored before any is sent.

    ``phase`` orders them make before break: 1 launch, 2 shift routing, 3 terminate. The idempotency key
    is derived from the plan and the action and travels to the provider (token, request id, name, tag),
    so a retry or a resume after a crash finds what the first attempt made instead of making it twice.
    """

    __tablename__ = "provisioning_actions"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "seq"),
        sa.CheckConstraint("instances >= 0", name="instances_nonneg"),
        sa.CheckConstraint("attempts >= 0", name="attempts_nonneg"),
        sa.CheckConstraint("phase >= 1 AND phase <= 3", name="phase_range"),
        sa.Index("ix_provisioning_actions_plan_id_status", "plan_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    seq: Mapped[int]
    phase: Mapped[int]
    idempotency_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    kind: Mapped[ActionKind] = mapped_column(enum_column_type(ActionKind, "action_kind"))
    provider: Mapped[str | None] = mapped_column(sa.String(64))
    offer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("offers.id"), index=True)
    placement_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plan_placements.id"))
    """Launch: the plan placement the new instances serve (the ``gpuplan:placement`` tag)."""
    instances: Mapped[int]
    """Launch: instances to start; terminate: 1; shift routing: 0."""
    instance_id: Mapped[str | None] = mapped_column(sa.String(200))
    """Terminate: the provider's id of the instance to stop."""
    replicas: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Launch: replicas per model the new instances are for; shift routing: the routes to apply."""
    status: Mapped[ActionStatus] = mapped_column(
        enum_column_type(ActionStatus, "action_status"), default=ActionStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    provider_ref: Mapped[str | None] = mapped_column(sa.Text)
    """The provider's ids of what the action made or touched."""
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)

    offer: Mapped[OfferRow | None] = relationship()


class FleetInstanceRow(Base):
    """One cloud instance the fleet knows: launched by an action, or adopted by reconciliation.

    Rows are kept after the instance ends (terminated, preempted, gone) as its history; the running fleet
    is the rows in a live state. ``fleet_placements`` aggregates the live rows per offer for the planner.
    """

    __tablename__ = "fleet_instances"
    __table_args__ = (
        sa.UniqueConstraint("provider", "instance_id"),
        sa.Index("ix_fleet_instances_state_offer_id", "state", "offer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(64))
    instance_id: Mapped[str] = mapped_column(sa.String(200))
    provisioner: Mapped[str] = mapped_column(sa.String(64))
    """The adapter that launched or found it, which reconciliation asks about it."""
    offer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("offers.id"))
    action_id: Mapped[int | None] = mapped_column(sa.ForeignKey("provisioning_actions.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"), index=True)
    state: Mapped[InstanceRecordState] = mapped_column(
        enum_column_type(InstanceRecordState, "instance_state")
    )
    spot: Mapped[bool] = mapped_column(default=False)
    region: Mapped[str] = mapped_column(sa.String(100), default="")
    zone: Mapped[str] = mapped_column(sa.String(100), default="")
    instance_type: Mapped[str] = mapped_column(sa.String(120), default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    adopted: Mapped[bool] = mapped_column(default=False)
    """Found by reconciliation without a launch of ours (a stray), and kept by policy."""
    launched_at: Mapped[dt.datetime | None]
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=_now)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=_now)
    ended_at: Mapped[dt.datetime | None]

    offer: Mapped[OfferRow | None] = relationship()


class OfferHoldRow(Base):
    """An offer the planner must not use until a time (the provider ran out of capacity on it)."""

    __tablename__ = "offer_holds"
    __table_args__ = (sa.Index("ix_offer_holds_offer_id_until", "offer_id", "until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(sa.ForeignKey("offers.id"))
    until: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    action_id: Mapped[int | None] = mapped_column(sa.ForeignKey("provisioning_actions.id"))


class DisruptionEventRow(Base):
    """A preemption, an interruption notice or an instance found gone, and when it was handled."""

    __tablename__ = "disruption_events"
    __table_args__ = (sa.UniqueConstraint("provider", "instance_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(64))
    instance_id: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[DisruptionKind] = mapped_column(enum_column_type(DisruptionKind, "disruption_kind"))
    source: Mapped[str] = mapped_column(sa.String(64))
    """simulated, aws_eventbridge, reconcile."""
    occurred_at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(default=_now)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    handled_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"))
    """The re-plan made for it."""


class SchedulerLeaseRow(Base):
    """A named lease with an expiry: the scheduler's leader on SQLite, and one applier per plan."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(200))
    acquired_at: Mapped[dt.datetime]
    renewed_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class JobRunRow(Base):
    """One run of a scheduler job for one tick; unique per (job, tick), so each tick runs once."""

    __tablename__ = "job_runs"
    __table_args__ = (sa.UniqueConstraint("job", "scheduled_for"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(sa.String(64))
    scheduled_for: Mapped[dt.datetime]
    holder: Mapped[str] = mapped_column(sa.String(200))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[JobRunStatus] = mapped_column(enum_column_type(JobRunStatus, "job_run_status"))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(sa.Text)


# ---------------------------------------------------------------------------------- simulated cloud


class SimInstanceRow(Base):
    """An instance of the simulated cloud (scheduler.provisioners.simulated): the cloud's own inventory."""

    __tablename__ = "sim_instances"
    __table_args__ = (sa.Index("ix_sim_instances_state_offer_key", "state", "offer_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    provider: Mapped[str] = mapped_column(sa.String(64))
    region: Mapped[str] = mapped_column(sa.String(100))
    zone: Mapped[str] = mapped_column(sa.String(100), default="")
    instance_type: Mapped[str] = mapped_column(sa.String(120))
    purchase_option: Mapped[PurchaseOption] = mapped_column(
        enum_column_type(PurchaseOption, "purchase_option")
    )
    offer_key: Mapped[str] = mapped_column(sa.String(400))
    action_key: Mapped[str] = mapped_column(sa.String(200), index=True)
    """The ``gpuplan:action`` tag (the idempotency key): launch finds what an earlier attempt made."""
    state: Mapped[str] = mapped_column(sa.String(32))
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    launched_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]


class SimCallRow(Base):
    """Every call the simulated cloud received, with its outcome: counts calls for the fault rules."""

    __tablename__ = "sim_calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime]
    verb: Mapped[str] = mapped_column(sa.String(32))
    provider: Mapped[str] = mapped_column(sa.String(64), default="")
    subject: Mapped[str] = mapped_column(sa.String(400), default="")
    outcome: Mapped[str] = mapped_column(sa.String(64))


class AuditLogRow(Base):
    """Append-only record of who did what to which entity."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=_now, index=True)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(100))
    entity_type: Mapped[str] = mapped_column(sa.String(64))
    entity_id: Mapped[str] = mapped_column(sa.String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiRole(StrEnum):
    """What an API key may do; each role includes the ones before it."""

    VIEWER = "viewer"  # read everything
    APPROVER = "approver"  # + create, approve, reject, apply and cancel plans; edit workloads
    ADMIN = "admin"  # + manage API keys


class ApiKeyRow(Base):
    """An API key: only a hash of its secret is kept; the prefix (shown in lists) tells keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(sa.String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(128))
    owner: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[ApiRole] = mapped_column(enum_column_type(ApiRole, "api_role"))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class SolveJobRow(Base):
    """A solve of the fleet asked for through the REST API, queued until one worker claims it.

    A worker claims a queued job atomically (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a guarded UPDATE
    on SQLite), renews ``heartbeat_at`` while it solves, and stores the plan and finishes the job in one
    transaction guarded by its claim (``claimed_by`` and ``attempts``), so that a solve is stored once
    even when a worker thought dead comes back. A running job whose heartbeat is too old is re-queued.
    """

    __tablename__ = "solve_jobs"
    __table_args__ = (
        sa.CheckConstraint("time_limit_s > 0", name="time_limit_positive"),
        sa.Index("ix_solve_jobs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[SolveJobStatus] = mapped_column(enum_column_type(SolveJobStatus, "solve_job_status"))
    requested_by: Mapped[str] = mapped_column(sa.String(200))
    requested_at: Mapped[dt.datetime]
    time_limit_s: Mapped[float]
    notes: Mapped[str | None] = mapped_column(sa.Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The solver parameters (``solver.problem.SolveParams``)."""
    attempts: Mapped[int] = mapped_column(default=0)
    """Claims so far; a claim is identified by (``claimed_by``, ``attempts``)."""
    claimed_by: Mapped[str | None] = mapped_column(sa.String(200))
    started_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"), index=True)
    solver_status: Mapped[str | None] = mapped_column(sa.String(32))
    error: Mapped[str | None] = mapped_column(sa.Text)
    """One line: why the job failed."""
    diagnosis: Mapped[dict[str, Any] | None]
    """A failed solve's findings (solver status, explanations) or a done solve's summary."""


APPEND_ONLY_TABLES = (
    "price_observations",
    "availability_observations",
    "spot_placement_scores",
    "audit_log",
)
