"""webhook delivery extras (issue 5)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "destination", sa.String(length=20), nullable=False, server_default="endpoint"
            )
        )
        batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_webhook_deliveries_team_id_id", ["team_id", "id"], unique=False)
    # Rows written before this revision without an endpoint were a job's own webhook_url.
    op.execute("UPDATE webhook_deliveries SET destination = 'job_url' WHERE endpoint_id IS NULL")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_column("attempt")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_team_id_id")
        batch_op.drop_column("lease_token")
        batch_op.drop_column("destination")
