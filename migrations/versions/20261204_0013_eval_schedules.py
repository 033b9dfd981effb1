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
    """Filled in by the issue's work; a no-op until then."""
    assert sa is not None and op is not None and JSON is not None


def downgrade() -> None:
    """Filled in by the issue's work; a no-op until then."""
