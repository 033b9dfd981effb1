"""evaluations (issue 7)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("grader", sa.String(length=20), nullable=False),
        sa.Column("models", JSON, nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("max_items", sa.Integer(), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_until", TIME, nullable=True),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("completed_at", TIME, nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_evals_team_id_teams"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_evals_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evals")),
    )
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.create_index("ix_evals_team_id_id", ["team_id", "id"], unique=False)
        batch_op.create_index(
            "ix_evals_status_lease_until", ["status", "lease_until"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_evals_job_id"), ["job_id"], unique=False)

    op.create_table(
        "eval_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("eval_id", sa.String(length=40), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("messages", JSON, nullable=False),
        sa.Column("reference", JSON, nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_id"], ["evals.id"], name=op.f("fk_eval_items_eval_id_evals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_items")),
        sa.UniqueConstraint("eval_id", "item_index", name=op.f("uq_eval_items_eval_id_item_index")),
    )
    op.create_table(
        "eval_outputs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("eval_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("completed_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_id"],
            ["evals.id"],
            name=op.f("fk_eval_outputs_eval_id_evals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_outputs")),
        sa.UniqueConstraint(
            "eval_id", "model", "item_index", name=op.f("uq_eval_outputs_eval_id_model_item_index")
        ),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("eval_request", JSON, nullable=True))
        batch_op.add_column(sa.Column("eval_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("eval_id")
        batch_op.drop_column("eval_request")
    op.drop_table("eval_outputs")
    op.drop_table("eval_items")
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evals_job_id"))
        batch_op.drop_index("ix_evals_status_lease_until")
        batch_op.drop_index("ix_evals_team_id_id")
    op.drop_table("evals")
