"""spot placement scores (append-only) and discount rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:40:48.425504+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_TABLE = "spot_placement_scores"


def _create_append_only_triggers() -> None:
    # The same triggers as 0001's append-only tables; on PostgreSQL 0001 created the function.
    bind = op.get_bind()
    table = APPEND_ONLY_TABLE
    if bind.dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION gpuplan_refuse_change()"
        )
    elif bind.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER trg_{table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def _drop_append_only_triggers() -> None:
    bind = op.get_bind()
    table = APPEND_ONLY_TABLE
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_append_only ON {table}")
    elif bind.dialect.name == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_no_{verb}")


def upgrade() -> None:
    op.create_table(
        "discount_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=120), nullable=True),
        sa.Column("instance_type", sa.String(length=120), nullable=True),
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
            nullable=True,
        ),
        sa.Column("percent_off_bp", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "family IS NULL OR instance_type IS NULL", name=op.f("ck_discount_rules_family_or_instance_type")
        ),
        sa.CheckConstraint(
            "percent_off_bp >= 0 AND percent_off_bp < 10000", name=op.f("ck_discount_rules_percent_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discount_rules")),
    )
    op.create_table(
        "spot_placement_scores",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instance_type_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=100), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("target_instances", sa.Integer(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("collection_run_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("score >= 1 AND score <= 10", name=op.f("ck_spot_placement_scores_score_range")),
        sa.CheckConstraint("target_instances > 0", name=op.f("ck_spot_placement_scores_target_positive")),
        sa.ForeignKeyConstraint(
            ["collection_run_id"],
            ["collection_runs.id"],
            name=op.f("fk_spot_placement_scores_collection_run_id_collection_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["instance_type_id"],
            ["instance_types.id"],
            name=op.f("fk_spot_placement_scores_instance_type_id_instance_types"),
        ),
        sa.ForeignKeyConstraint(
            ["region_id"], ["regions.id"], name=op.f("fk_spot_placement_scores_region_id_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spot_placement_scores")),
        sa.UniqueConstraint(
            "instance_type_id",
            "region_id",
            "zone",
            "target_instances",
            "observed_at",
            "source",
            name="uq_spot_placement_scores_observation",
        ),
    )
    with op.batch_alter_table("spot_placement_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spot_placement_scores_collection_run_id"), ["collection_run_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_spot_placement_scores_region_id"), ["region_id"], unique=False)

    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    with op.batch_alter_table("spot_placement_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spot_placement_scores_region_id"))
        batch_op.drop_index(batch_op.f("ix_spot_placement_scores_collection_run_id"))

    op.drop_table("spot_placement_scores")
    op.drop_table("discount_rules")
