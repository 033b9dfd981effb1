"""jobs may list fallback providers and a model name per provider (issue 14)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("fallback_providers", JSON, nullable=False, server_default="[]")
    )
    op.add_column("jobs", sa.Column("model_map", JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("model_map")
        batch_op.drop_column("fallback_providers")
