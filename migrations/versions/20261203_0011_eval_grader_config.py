"""each eval's grader configuration (pattern, schema, judge) and the judge's reasons (issue 16)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grader_config", JSON, nullable=True))
    with op.batch_alter_table("eval_outputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_outputs", schema=None) as batch_op:
        batch_op.drop_column("reason")
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.drop_column("grader_config")
