"""initial schema: reference data, offers and price history, workloads, plans, fleet, audit log

Price and availability observations and the audit log are append-only: triggers refuse UPDATE and DELETE.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 11:11:56.307852+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY_TABLES = ("price_observations", "availability_observations", "audit_log")


def _create_append_only_triggers() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION gpuplan_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION gpuplan_refuse_change()"
            )
    elif bind.dialect.name == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER trg_{table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _drop_append_only_triggers() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS gpuplan_refuse_change()")
    elif bind.dialect.name == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_no_{verb}")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("entity_type", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_log_entity", ["entity_type", "entity_id"], unique=False)

    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "scope",
            sa.Enum(
                "global", "team", name="budget_scope", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("limit_micro_usd_per_month", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(scope = 'team') = (team IS NOT NULL)", name=op.f("ck_budgets_team_matches_scope")
        ),
        sa.CheckConstraint("limit_micro_usd_per_month > 0", name=op.f("ck_budgets_limit_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        sa.UniqueConstraint("scope", "team", name=op.f("uq_budgets_scope_team")),
    )
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.create_index(
            "uq_budgets_one_global",
            ["scope"],
            unique=True,
            sqlite_where=sa.text("team IS NULL"),
            postgresql_where=sa.text("team IS NULL"),
        )

    op.create_table(
        "collection_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "catalog",
                "collect",
                name="collection_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "succeeded",
                "partial",
                "failed",
                name="collection_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("offers_seen", sa.Integer(), nullable=False),
        sa.Column("observations_added", sa.Integer(), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_runs")),
    )
    op.create_table(
        "gpu_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.Enum(
                "H100",
                "H100-PCIE",
                "H100-NVL",
                "H200",
                "MI300X",
                name="gpu_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "vendor",
            sa.Enum("nvidia", "amd", name="gpu_vendor", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("memory_gib", sa.Integer(), nullable=False),
        sa.Column("memory_bandwidth_gbps", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_types")),
        sa.UniqueConstraint("name", name=op.f("uq_gpu_types_name")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("params_b", sa.Double(), nullable=True),
        sa.Column("latency_slo_ms", sa.Integer(), nullable=False),
        sa.Column(
            "redundancy",
            sa.Enum(
                "none",
                "region",
                "provider",
                name="redundancy",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("redundancy_share", sa.Double(), nullable=False),
        sa.Column("max_spot_share", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("latency_slo_ms > 0", name=op.f("ck_models_slo_positive")),
        sa.CheckConstraint(
            "max_spot_share >= 0 AND max_spot_share <= 1", name=op.f("ck_models_spot_share_range")
        ),
        sa.CheckConstraint(
            "redundancy_share > 0 AND redundancy_share <= 1", name=op.f("ck_models_redundancy_share_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_team"), ["team"], unique=False)

    op.create_table(
        "planning_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("target_utilisation", sa.Double(), nullable=False),
        sa.Column("churn_penalty_micro_usd_per_replica", sa.BigInteger(), nullable=False),
        sa.Column("churn_max_moved_share", sa.Double(), nullable=False),
        sa.Column("churn_min_saving_share", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "churn_max_moved_share >= 0 AND churn_max_moved_share <= 1",
            name=op.f("ck_planning_policies_moved_range"),
        ),
        sa.CheckConstraint(
            "churn_min_saving_share >= 0 AND churn_min_saving_share < 1",
            name=op.f("ck_planning_policies_saving_range"),
        ),
        sa.CheckConstraint(
            "churn_penalty_micro_usd_per_replica >= 0", name=op.f("ck_planning_policies_penalty_nonneg")
        ),
        sa.CheckConstraint(
            "target_utilisation > 0 AND target_utilisation <= 1",
            name=op.f("ck_planning_policies_utilisation_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planning_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_planning_policies_name")),
    )
    with op.batch_alter_table("planning_policies", schema=None) as batch_op:
        batch_op.create_index(
            "uq_planning_policies_one_active",
            ["active"],
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )

    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "pending_approval",
                "approved",
                "applying",
                "applied",
                "failed",
                "rejected",
                "superseded",
                name="plan_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("solver_status", sa.String(length=32), nullable=False),
        sa.Column("cost_micro_usd_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("lower_bound_micro_usd_per_hour", sa.BigInteger(), nullable=True),
        sa.Column("gap", sa.Double(), nullable=True),
        sa.Column("wall_time_ms", sa.Integer(), nullable=True),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "inputs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "explanations",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("superseded_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("cost_micro_usd_per_hour >= 0", name=op.f("ck_plans_cost_nonneg")),
        sa.ForeignKeyConstraint(
            ["superseded_by_id"], ["plans.id"], name=op.f("fk_plans_superseded_by_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_index("ix_plans_status_created_at", ["status", "created_at"], unique=False)

    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "hyperscaler",
                "neocloud",
                "marketplace",
                name="provider_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("pricing_api", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    op.create_table(
        "collection_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("location", sa.String(length=400), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["collection_runs.id"],
            name=op.f("fk_collection_errors_run_id_collection_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_errors")),
    )
    with op.batch_alter_table("collection_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collection_errors_run_id"), ["run_id"], unique=False)

    op.create_table(
        "instance_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("gpu_type_id", sa.Integer(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("vcpus", sa.Double(), nullable=True),
        sa.Column("memory_gib", sa.Double(), nullable=True),
        sa.CheckConstraint("gpu_count > 0", name=op.f("ck_instance_types_gpu_count_positive")),
        sa.ForeignKeyConstraint(
            ["gpu_type_id"], ["gpu_types.id"], name=op.f("fk_instance_types_gpu_type_id_gpu_types")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_instance_types_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_types")),
        sa.UniqueConstraint("provider_id", "name", name=op.f("uq_instance_types_provider_id_name")),
    )
    op.create_table(
        "model_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("gpu_type_id", sa.Integer(), nullable=False),
        sa.Column("gpus_per_replica", sa.Integer(), nullable=False),
        sa.Column("tokens_per_s_per_replica", sa.Integer(), nullable=False),
        sa.Column("service_latency_ms", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.CheckConstraint("gpus_per_replica > 0", name=op.f("ck_model_profiles_gpus_positive")),
        sa.CheckConstraint("service_latency_ms >= 0", name=op.f("ck_model_profiles_latency_nonneg")),
        sa.CheckConstraint(
            "tokens_per_s_per_replica > 0", name=op.f("ck_model_profiles_throughput_positive")
        ),
        sa.ForeignKeyConstraint(
            ["gpu_type_id"], ["gpu_types.id"], name=op.f("fk_model_profiles_gpu_type_id_gpu_types")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_profiles_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_profiles")),
        sa.UniqueConstraint("model_id", "gpu_type_id", name=op.f("uq_model_profiles_model_id_gpu_type_id")),
    )
    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column(
            "continent",
            sa.Enum(
                "AF",
                "AN",
                "AS",
                "EU",
                "NA",
                "OC",
                "SA",
                name="continent",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column(
            "jurisdictions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("location_precision", sa.String(length=16), nullable=False),
        sa.Column("location_source", sa.Text(), nullable=False),
        sa.CheckConstraint("lat >= -90 AND lat <= 90", name=op.f("ck_regions_lat_range")),
        sa.CheckConstraint("lon >= -180 AND lon <= 180", name=op.f("ck_regions_lon_range")),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_regions_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regions")),
        sa.UniqueConstraint("provider_id", "code", name=op.f("uq_regions_provider_id_code")),
    )
    op.create_table(
        "availability_observations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instance_type_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=100), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "offered",
                "not_offered",
                "restricted",
                name="availability_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("available_instances", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("collection_run_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "available_instances IS NULL OR available_instances >= 0",
            name=op.f("ck_availability_observations_available_nonneg"),
        ),
        sa.ForeignKeyConstraint(
            ["collection_run_id"],
            ["collection_runs.id"],
            name=op.f("fk_availability_observations_collection_run_id_collection_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["instance_type_id"],
            ["instance_types.id"],
            name=op.f("fk_availability_observations_instance_type_id_instance_types"),
        ),
        sa.ForeignKeyConstraint(
            ["region_id"], ["regions.id"], name=op.f("fk_availability_observations_region_id_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_observations")),
        sa.UniqueConstraint(
            "instance_type_id",
            "region_id",
            "zone",
            "observed_at",
            "source",
            name=op.f("uq_availability_observations_instance_type_id_region_id_zone_observed_at_source"),
        ),
    )
    with op.batch_alter_table("availability_observations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_availability_observations_collection_run_id"), ["collection_run_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_availability_observations_region_id"), ["region_id"], unique=False
        )

    op.create_table(
        "demand_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column(
            "jurisdictions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "residency",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("anchor_region_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("lat >= -90 AND lat <= 90", name=op.f("ck_demand_sources_lat_range")),
        sa.CheckConstraint("lon >= -180 AND lon <= 180", name=op.f("ck_demand_sources_lon_range")),
        sa.ForeignKeyConstraint(
            ["anchor_region_id"], ["regions.id"], name=op.f("fk_demand_sources_anchor_region_id_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demand_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_demand_sources_name")),
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("instance_type_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=100), nullable=False),
        sa.Column(
            "purchase_option",
            sa.Enum(
                "on_demand",
                "spot",
                "reserved",
                "capacity_block",
                "flex_start",
                name="purchase_option",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "term",
            sa.Enum("1y", "3y", name="reserved_term", native_enum=False, create_constraint=True, length=32),
            nullable=True,
        ),
        sa.Column(
            "upfront",
            sa.Enum(
                "no_upfront",
                "partial_upfront",
                "all_upfront",
                name="upfront",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stale_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_price_micro_usd", sa.BigInteger(), nullable=True),
        sa.Column("latest_observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "latest_price_micro_usd IS NULL OR latest_price_micro_usd > 0",
            name=op.f("ck_offers_latest_price_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["instance_type_id"],
            ["instance_types.id"],
            name=op.f("fk_offers_instance_type_id_instance_types"),
        ),
        sa.ForeignKeyConstraint(["region_id"], ["regions.id"], name=op.f("fk_offers_region_id_regions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("key", name=op.f("uq_offers_key")),
    )
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offers_instance_type_id"), ["instance_type_id"], unique=False)
        batch_op.create_index(
            "ix_offers_region_id_purchase_option", ["region_id", "purchase_option"], unique=False
        )

    op.create_table(
        "commitments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("instances > 0", name=op.f("ck_commitments_instances_positive")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_commitments_offer_id_offers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commitments")),
    )
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commitments_offer_id"), ["offer_id"], unique=False)

    op.create_table(
        "demands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("tokens_per_s", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("tokens_per_s > 0", name=op.f("ck_demands_tokens_positive")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_demands_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["demand_sources.id"],
            name=op.f("fk_demands_source_id_demand_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demands")),
        sa.UniqueConstraint("model_id", "source_id", name=op.f("uq_demands_model_id_source_id")),
    )
    with op.batch_alter_table("demands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_demands_source_id"), ["source_id"], unique=False)

    op.create_table(
        "fleet_placements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("instances >= 0", name=op.f("ck_fleet_placements_instances_nonneg")),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_fleet_placements_offer_id_offers")
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_fleet_placements_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_placements")),
        sa.UniqueConstraint("offer_id", name=op.f("uq_fleet_placements_offer_id")),
    )
    with op.batch_alter_table("fleet_placements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_placements_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "plan_placements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("price_micro_usd_per_hour", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("instances > 0", name=op.f("ck_plan_placements_instances_positive")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_plan_placements_offer_id_offers")),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_placements_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_placements")),
        sa.UniqueConstraint("plan_id", "offer_id", name=op.f("uq_plan_placements_plan_id_offer_id")),
    )
    with op.batch_alter_table("plan_placements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_placements_offer_id"), ["offer_id"], unique=False)

    op.create_table(
        "plan_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("share", sa.Double(), nullable=False),
        sa.CheckConstraint("share > 0 AND share <= 1", name=op.f("ck_plan_routes_share_range")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_plan_routes_model_id_models")),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_routes_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["region_id"], ["regions.id"], name=op.f("fk_plan_routes_region_id_regions")),
        sa.ForeignKeyConstraint(
            ["source_id"], ["demand_sources.id"], name=op.f("fk_plan_routes_source_id_demand_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_routes")),
        sa.UniqueConstraint(
            "plan_id",
            "model_id",
            "source_id",
            "region_id",
            name=op.f("uq_plan_routes_plan_id_model_id_source_id_region_id"),
        ),
    )
    with op.batch_alter_table("plan_routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_routes_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_routes_region_id"), ["region_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_routes_source_id"), ["source_id"], unique=False)

    op.create_table(
        "price_observations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_micro_usd_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("collection_run_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("price_micro_usd_per_hour > 0", name=op.f("ck_price_observations_price_positive")),
        sa.ForeignKeyConstraint(
            ["collection_run_id"],
            ["collection_runs.id"],
            name=op.f("fk_price_observations_collection_run_id_collection_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_price_observations_offer_id_offers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_observations")),
        sa.UniqueConstraint(
            "offer_id",
            "observed_at",
            "source",
            name=op.f("uq_price_observations_offer_id_observed_at_source"),
        ),
    )
    with op.batch_alter_table("price_observations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_price_observations_collection_run_id"), ["collection_run_id"], unique=False
        )

    op.create_table(
        "provisioning_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "launch",
                "terminate",
                name="action_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "succeeded",
                "failed",
                name="action_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(length=400), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("instances > 0", name=op.f("ck_provisioning_actions_instances_positive")),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_provisioning_actions_offer_id_offers")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_provisioning_actions_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_actions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_provisioning_actions_idempotency_key")),
    )
    with op.batch_alter_table("provisioning_actions", schema=None) as batch_op:
        batch_op.create_index("ix_provisioning_actions_plan_id_status", ["plan_id", "status"], unique=False)

    op.create_table(
        "fleet_replicas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("placement_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.CheckConstraint("replicas > 0", name=op.f("ck_fleet_replicas_replicas_positive")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_fleet_replicas_model_id_models")),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["fleet_placements.id"],
            name=op.f("fk_fleet_replicas_placement_id_fleet_placements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_replicas")),
        sa.UniqueConstraint("placement_id", "model_id", name=op.f("uq_fleet_replicas_placement_id_model_id")),
    )
    with op.batch_alter_table("fleet_replicas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_replicas_model_id"), ["model_id"], unique=False)

    op.create_table(
        "plan_replicas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("placement_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.CheckConstraint("replicas > 0", name=op.f("ck_plan_replicas_replicas_positive")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_plan_replicas_model_id_models")),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["plan_placements.id"],
            name=op.f("fk_plan_replicas_placement_id_plan_placements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_replicas")),
        sa.UniqueConstraint("placement_id", "model_id", name=op.f("uq_plan_replicas_placement_id_model_id")),
    )
    with op.batch_alter_table("plan_replicas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_replicas_model_id"), ["model_id"], unique=False)

    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    with op.batch_alter_table("plan_replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_replicas_model_id"))

    op.drop_table("plan_replicas")
    with op.batch_alter_table("fleet_replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_replicas_model_id"))

    op.drop_table("fleet_replicas")
    with op.batch_alter_table("provisioning_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_provisioning_actions_plan_id_status")

    op.drop_table("provisioning_actions")
    with op.batch_alter_table("price_observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_price_observations_collection_run_id"))

    op.drop_table("price_observations")
    with op.batch_alter_table("plan_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_routes_source_id"))
        batch_op.drop_index(batch_op.f("ix_plan_routes_region_id"))
        batch_op.drop_index(batch_op.f("ix_plan_routes_model_id"))

    op.drop_table("plan_routes")
    with op.batch_alter_table("plan_placements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_placements_offer_id"))

    op.drop_table("plan_placements")
    with op.batch_alter_table("fleet_placements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_placements_plan_id"))

    op.drop_table("fleet_placements")
    with op.batch_alter_table("demands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_demands_source_id"))

    op.drop_table("demands")
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitments_offer_id"))

    op.drop_table("commitments")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index("ix_offers_region_id_purchase_option")
        batch_op.drop_index(batch_op.f("ix_offers_instance_type_id"))

    op.drop_table("offers")
    op.drop_table("demand_sources")
    with op.batch_alter_table("availability_observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_availability_observations_region_id"))
        batch_op.drop_index(batch_op.f("ix_availability_observations_collection_run_id"))

    op.drop_table("availability_observations")
    op.drop_table("regions")
    op.drop_table("model_profiles")
    op.drop_table("instance_types")
    with op.batch_alter_table("collection_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_errors_run_id"))

    op.drop_table("collection_errors")
    op.drop_table("providers")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index("ix_plans_status_created_at")

    op.drop_table("plans")
    with op.batch_alter_table("planning_policies", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_planning_policies_one_active",
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )

    op.drop_table("planning_policies")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_team"))

    op.drop_table("models")
    op.drop_table("gpu_types")
    op.drop_table("collection_runs")
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_budgets_one_global",
            sqlite_where=sa.text("team IS NULL"),
            postgresql_where=sa.text("team IS NULL"),
        )

    op.drop_table("budgets")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_entity")
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
