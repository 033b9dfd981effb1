"""partial indexes of unfinished jobs: the create's quota count and queue place (issue 15)

Without them both scanned every finished job of the team or of the (provider, model): a create
cost more the longer the history grew.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = "status IN ('queued', 'running', 'submitted', 'uploading')"
SLOTS = "status IN ('running', 'submitted', 'uploading')"
QUEUED = "status = 'queued'"
INDEXES = (
    ("ix_jobs_team_id_unfinished", UNFINISHED, ["team_id"]),
    ("ix_jobs_slots", SLOTS, ["provider", "model", "team_id"]),
    ("ix_jobs_queued", QUEUED, ["provider", "model", "team_id", "created_at", "id"]),
)


def upgrade() -> None:
    for name, predicate, columns in INDEXES:
        where = sa.text(predicate)
        op.create_index(name, "jobs", columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name="jobs")
