"""provider capacity, scheduling, checkpoints and result files (issue 4)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
JOB_COLUMNS = (
    sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("validation_split", sa.Double(), nullable=True),
    sa.Column("provider_fingerprint", sa.String(length=300), nullable=True),
    sa.Column("provider_created_at", sa.BigInteger(), nullable=True),
    sa.Column("result_file_id", sa.String(length=100), nullable=True),
    sa.Column("result_blob_key", sa.String(length=300), nullable=True),
    sa.Column("result_bytes", sa.Integer(), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for column in JOB_COLUMNS:
            batch_op.add_column(column.copy())
        batch_op.create_index(
            "ix_jobs_provider_model_status", ["provider", "model", "status"], unique=False
        )

    op.create_table(
        "provider_capacity",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "model", name=op.f("pk_provider_capacity")),
    )
    op.create_table(
        "provider_sweeps",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("next_sweep_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sweep_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_sweeps")),
    )
    op.create_table(
        "job_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("provider_checkpoint_id", sa.String(length=100), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=False),
        sa.Column("fine_tuned_model_checkpoint", sa.String(length=300), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("provider_created_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_checkpoints_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_checkpoints")),
        sa.UniqueConstraint(
            "job_id",
            "provider_checkpoint_id",
            name=op.f("uq_job_checkpoints_job_id_provider_checkpoint_id"),
        ),
    )
    with op.batch_alter_table("job_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_checkpoints_job_id"), ["job_id"], unique=False)

    op.create_table(
        "job_metrics",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("train_loss", sa.Double(), nullable=True),
        sa.Column("train_mean_token_accuracy", sa.Double(), nullable=True),
        sa.Column("valid_loss", sa.Double(), nullable=True),
        sa.Column("valid_mean_token_accuracy", sa.Double(), nullable=True),
        sa.Column("full_valid_loss", sa.Double(), nullable=True),
        sa.Column("full_valid_mean_token_accuracy", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_metrics_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "step", name=op.f("pk_job_metrics")),
    )


def downgrade() -> None:
    op.drop_table("job_metrics")
    with op.batch_alter_table("job_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_checkpoints_job_id"))
    op.drop_table("job_checkpoints")
    op.drop_table("provider_sweeps")
    op.drop_table("provider_capacity")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_provider_model_status")
        for column in reversed(JOB_COLUMNS):
            batch_op.drop_column(column.name)
