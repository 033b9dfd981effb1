"""scheduled re-evaluation: eval_schedules and their runs (issue 18)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_schedules",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("team_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("dataset_id", sa.String(40), nullable=False),
        sa.Column("grader", sa.String(20), nullable=False),
        sa.Column("grader_config", JSON, nullable=True),
        sa.Column("provider", sa.String(40), nullable=True),
        sa.Column("max_items", sa.Integer(), nullable=True),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("baseline_score", sa.Float(), nullable=True),
        sa.Column("baseline_eval_id", sa.String(40), nullable=True),
        sa.Column("tolerance", sa.Float(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name="fk_eval_schedules_team_id_teams", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_eval_schedules"),
    )
    op.create_index("ix_eval_schedules_team_id_id", "eval_schedules", ["team_id", "id"])
    op.create_index(
        "ix_eval_schedules_status_next_run_at", "eval_schedules", ["status", "next_run_at"]
    )
    op.create_table(
        "eval_schedule_runs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("schedule_id", sa.String(40), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("eval_id", sa.String(40), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("interval", JSON, nullable=True),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("regressed", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["eval_schedules.id"],
            name="fk_eval_schedule_runs_schedule_id_eval_schedules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_eval_schedule_runs"),
        # One run per slot, whatever the number of beats or crashed workers.
        sa.UniqueConstraint("schedule_id", "slot", name="uq_eval_schedule_runs_schedule_id_slot"),
    )
    op.create_index("ix_eval_schedule_runs_status", "eval_schedule_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_eval_schedule_runs_status", table_name="eval_schedule_runs")
    op.drop_table("eval_schedule_runs")
    op.drop_index("ix_eval_schedules_status_next_run_at", table_name="eval_schedules")
    op.drop_index("ix_eval_schedules_team_id_id", table_name="eval_schedules")
    op.drop_table("eval_schedules")
