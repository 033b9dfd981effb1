"""every replaced signing secret keeps its own overlap; teams can rotate theirs (issue 15)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 00:00:00
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

endpoints = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.String),
    sa.column("previous_secret_encrypted", sa.String),
    sa.column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    sa.column("previous_secrets", sa.JSON),
)


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("previous_secrets", sa.JSON(), nullable=False, server_default="[]"),
    )
    op.add_column(
        "teams",
        sa.Column("previous_signing_secrets", sa.JSON(), nullable=False, server_default="[]"),
    )
    bind = op.get_bind()
    query = sa.select(
        endpoints.c.id,
        endpoints.c.previous_secret_encrypted,
        endpoints.c.previous_secret_expires_at,
    ).where(endpoints.c.previous_secret_encrypted.is_not(None))
    for endpoint_id, secret, expires in bind.execute(query).all():
        if expires is not None:
            entry = {"secret": secret, "expires_at": _iso(expires)}
            bind.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(previous_secrets=[entry])
            )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_encrypted")


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("previous_secret_encrypted", sa.String(length=400), nullable=True)
        )
        batch_op.add_column(
            sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
    bind = op.get_bind()
    query = sa.select(endpoints.c.id, endpoints.c.previous_secrets)
    for endpoint_id, previous in bind.execute(query).all():
        if previous:
            newest = max(previous, key=lambda entry: entry["expires_at"])
            bind.execute(
                endpoints.update()
                .where(endpoints.c.id == endpoint_id)
                .values(
                    previous_secret_encrypted=newest["secret"],
                    previous_secret_expires_at=datetime.fromisoformat(newest["expires_at"]),
                )
            )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secrets")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("previous_signing_secrets")


def _iso(value: datetime | str) -> str:
    """SQLite hands back text; Postgres a datetime."""
    return value if isinstance(value, str) else value.isoformat()
