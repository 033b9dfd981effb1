"""local LoRA provider (issue 8)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "local_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("ftq_job_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("training_file", sa.String(length=300), nullable=False),
        sa.Column("validation_file", sa.String(length=300), nullable=True),
        sa.Column("method", JSON, nullable=False),
        sa.Column("suffix", sa.String(length=64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("run_metadata", JSON, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("fine_tuned_model", sa.String(length=400), nullable=True),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("artifact_prefix", sa.String(length=300), nullable=True),
        sa.Column("result_key", sa.String(length=300), nullable=True),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_runs")),
        sa.UniqueConstraint("ftq_job_id", name=op.f("uq_local_runs_ftq_job_id")),
    )
    op.create_table(
        "local_run_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["local_runs.id"],
            name=op.f("fk_local_run_events_run_id_local_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_run_events")),
    )
    op.create_index(
        op.f("ix_local_run_events_run_id"), "local_run_events", ["run_id"], unique=False
    )
    op.create_table(
        "local_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["local_runs.id"],
            name=op.f("fk_local_checkpoints_run_id_local_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_checkpoints")),
        sa.UniqueConstraint("run_id", "step", name=op.f("uq_local_checkpoints_run_id_step")),
    )
    op.create_index(
        op.f("ix_local_checkpoints_run_id"), "local_checkpoints", ["run_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_local_checkpoints_run_id"), table_name="local_checkpoints")
    op.drop_table("local_checkpoints")
    op.drop_index(op.f("ix_local_run_events_run_id"), table_name="local_run_events")
    op.drop_table("local_run_events")
    op.drop_table("local_runs")
