"""the Ray Job attempt of each local run (issue 17)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("local_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint("ck_local_runs_attempt_nonnegative", "attempt >= 0")


def downgrade() -> None:
    with op.batch_alter_table("local_runs", schema=None) as batch_op:
        batch_op.drop_constraint("ck_local_runs_attempt_nonnegative", type_="check")
        batch_op.drop_column("attempt")
