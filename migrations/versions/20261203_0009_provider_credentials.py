"""per-team provider credentials, and the credential each job was created with (issue 14)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "provider_credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("key_encrypted", sa.String(length=2000), nullable=False),
        sa.Column("key_hint", sa.String(length=8), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=True),
        sa.Column("organization", sa.String(length=200), nullable=True),
        sa.Column("azure_endpoint", sa.String(length=2000), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name="fk_provider_credentials_team_id_teams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_provider_credentials"),
    )
    op.create_index("ix_provider_credentials_team_id", "provider_credentials", ["team_id"])
    op.create_index(
        "uq_provider_credentials_team_id_provider_active",
        "provider_credentials",
        ["team_id", "provider"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            "fk_jobs_credential_id_provider_credentials",
            "provider_credentials",
            ["credential_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_credential_id_provider_credentials", type_="foreignkey")
        batch_op.drop_column("credential_id")
    op.drop_index(
        "uq_provider_credentials_team_id_provider_active", table_name="provider_credentials"
    )
    op.drop_index("ix_provider_credentials_team_id", table_name="provider_credentials")
    op.drop_table("provider_credentials")
