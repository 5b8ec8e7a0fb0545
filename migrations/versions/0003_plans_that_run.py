"""plans that run: plan lifecycle and diff, provisioning actions, the fleet's instances, the simulated
cloud, offer holds, disruption events, scheduler leases and job runs

Plan statuses gain partially_applied and stale. ``provisioning_actions`` had no writer before this
revision; it is recreated with the apply engine's columns (phase, sequence, provider, instance, replicas,
timestamps). On SQLite the plans' status CHECK is widened in place through ``writable_schema`` (the
procedure SQLite documents for changing CHECK constraints): copying the table, as batch mode would, drops
it first, and with foreign keys on that deletes every plan's placements and routes through their
ON DELETE CASCADE.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:01:13.826869+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_PLAN_STATUSES = (
    "draft",
    "pending_approval",
    "approved",
    "applying",
    "applied",
    "failed",
    "rejected",
    "superseded",
)
NEW_PLAN_STATUSES = (*OLD_PLAN_STATUSES, "partially_applied", "stale")


def _status_check(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{status}'" for status in statuses) + ")"


def _set_plan_statuses(old: Sequence[str], new: Sequence[str]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        sql = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'plans'")
        ).scalar_one()
        before, after = _status_check(old), _status_check(new)
        if before not in sql:
            raise RuntimeError(f"plans: the status CHECK is not the expected {before!r}; migrate by hand")
        version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
        bind.execute(sa.text("PRAGMA writable_schema = ON"))
        bind.execute(
            sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'plans'"),
            {"sql": sql.replace(before, after)},
        )
        bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
        bind.execute(sa.text("PRAGMA writable_schema = OFF"))
    else:
        op.drop_constraint(op.f("ck_plans_plan_status"), "plans", type_="check")
        op.create_check_constraint(op.f("ck_plans_plan_status"), "plans", _status_check(new))


def _create_plan_statuses() -> None:
    _set_plan_statuses(OLD_PLAN_STATUSES, NEW_PLAN_STATUSES)


def _drop_plan_statuses() -> None:
    # Plans in the new states fall back to the nearest old one.
    op.execute("UPDATE plans SET status = 'failed' WHERE status = 'partially_applied'")
    op.execute("UPDATE plans SET status = 'superseded' WHERE status = 'stale'")
    _set_plan_statuses(NEW_PLAN_STATUSES, OLD_PLAN_STATUSES)


JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _create_actions() -> None:
    op.create_table(
        "provisioning_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "launch",
                "shift_routing",
                "terminate",
                name="action_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("placement_id", sa.Integer(), nullable=True),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=True),
        sa.Column("replicas", JSON, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "succeeded",
                "failed",
                "cancelled",
                name="action_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_provisioning_actions_attempts_nonneg")),
        sa.CheckConstraint("instances >= 0", name=op.f("ck_provisioning_actions_instances_nonneg")),
        sa.CheckConstraint("phase >= 1 AND phase <= 3", name=op.f("ck_provisioning_actions_phase_range")),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_provisioning_actions_offer_id_offers")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_provisioning_actions_plan_id_plans")
        ),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["plan_placements.id"],
            name=op.f("fk_provisioning_actions_placement_id_plan_placements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_actions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_provisioning_actions_idempotency_key")),
        sa.UniqueConstraint("plan_id", "seq", name=op.f("uq_provisioning_actions_plan_id_seq")),
    )
    with op.batch_alter_table("provisioning_actions", schema=None) as batch_op:
        batch_op.create_index("ix_provisioning_actions_plan_id_status", ["plan_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_provisioning_actions_offer_id"), ["offer_id"], unique=False)


def _create_old_actions() -> None:
    """provisioning_actions as revision 0001 made it."""
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


def _drop_actions() -> None:
    with op.batch_alter_table("provisioning_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_provisioning_actions_plan_id_status")
    op.drop_table("provisioning_actions")


def upgrade() -> None:
    _create_plan_statuses()
    _drop_actions()
    _create_actions()
    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "succeeded",
                "failed",
                "interrupted",
                name="job_run_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "scheduled_for", name=op.f("uq_job_runs_job_scheduled_for")),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )
    op.create_table(
        "sim_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verb", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_calls")),
    )
    op.create_table(
        "sim_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("zone", sa.String(length=100), nullable=False),
        sa.Column("instance_type", sa.String(length=120), nullable=False),
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
        sa.Column("offer_key", sa.String(length=400), nullable=False),
        sa.Column("action_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_instances")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_sim_instances_instance_id")),
    )
    with op.batch_alter_table("sim_instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sim_instances_action_key"), ["action_key"], unique=False)
        batch_op.create_index("ix_sim_instances_state_offer_key", ["state", "offer_key"], unique=False)

    op.create_table(
        "disruption_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "preempted",
                "interruption_notice",
                "gone",
                name="disruption_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_disruption_events_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disruption_events")),
        sa.UniqueConstraint(
            "provider", "instance_id", "kind", name=op.f("uq_disruption_events_provider_instance_id_kind")
        ),
    )
    with op.batch_alter_table("disruption_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_disruption_events_handled_at"), ["handled_at"], unique=False)

    op.create_table(
        "fleet_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("provisioner", sa.String(length=64), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "running",
                "terminating",
                "terminated",
                "preempted",
                "gone",
                "interrupted",
                name="instance_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("spot", sa.Boolean(), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("zone", sa.String(length=100), nullable=False),
        sa.Column("instance_type", sa.String(length=120), nullable=False),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("adopted", sa.Boolean(), nullable=False),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["provisioning_actions.id"],
            name=op.f("fk_fleet_instances_action_id_provisioning_actions"),
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_fleet_instances_offer_id_offers")),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_fleet_instances_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_instances")),
        sa.UniqueConstraint("provider", "instance_id", name=op.f("uq_fleet_instances_provider_instance_id")),
    )
    with op.batch_alter_table("fleet_instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_instances_action_id"), ["action_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fleet_instances_plan_id"), ["plan_id"], unique=False)
        batch_op.create_index("ix_fleet_instances_state_offer_id", ["state", "offer_id"], unique=False)

    op.create_table(
        "offer_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["provisioning_actions.id"],
            name=op.f("fk_offer_holds_action_id_provisioning_actions"),
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_offer_holds_offer_id_offers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_holds")),
    )
    with op.batch_alter_table("offer_holds", schema=None) as batch_op:
        batch_op.create_index("ix_offer_holds_offer_id_until", ["offer_id", "until"], unique=False)

    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("problem_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("trigger", sa.String(length=32), server_default="manual", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "diff",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): batch mode would copy the table (see the docstring).
    for column in ("applied_at", "status_reason", "diff", "trigger", "problem_hash"):
        op.drop_column("plans", column)

    with op.batch_alter_table("offer_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_offer_holds_offer_id_until")

    op.drop_table("offer_holds")
    with op.batch_alter_table("fleet_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_fleet_instances_state_offer_id")
        batch_op.drop_index(batch_op.f("ix_fleet_instances_plan_id"))
        batch_op.drop_index(batch_op.f("ix_fleet_instances_action_id"))

    op.drop_table("fleet_instances")
    with op.batch_alter_table("disruption_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disruption_events_handled_at"))

    op.drop_table("disruption_events")
    with op.batch_alter_table("sim_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_sim_instances_state_offer_key")
        batch_op.drop_index(batch_op.f("ix_sim_instances_action_key"))

    op.drop_table("sim_instances")
    op.drop_table("sim_calls")
    op.drop_table("scheduler_leases")
    op.drop_table("job_runs")
    with op.batch_alter_table("provisioning_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provisioning_actions_offer_id"))
    _drop_actions()
    _create_old_actions()
    _drop_plan_statuses()
