"""Migration 0007 moves an endpoint's overlapping secret into the list and back, losing nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from ftq.shared.migrate import downgrade, upgrade

ENDPOINT = (
    "INSERT INTO webhook_endpoints (id, team_id, url, events, disabled, secret_encrypted, "
    "previous_secret_encrypted, previous_secret_expires_at, created_at) VALUES "
    "('w1', 't1', 'http://x', '[]', false, 'new', 'old', '2026-12-04 10:00:00', '2026-01-01')"
)
TEAM = (
    "INSERT INTO teams (id, name, max_active_jobs, signing_secret_encrypted, created_at) "
    "VALUES ('t1', 't', 1, 'x', '2026-01-01')"
)


def test_the_overlapping_secret_survives_upgrade_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url, "0006")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(TEAM))
        connection.execute(text(ENDPOINT))
    upgrade(url, "0007")
    with engine.begin() as connection:
        moved = connection.execute(text("SELECT previous_secrets FROM webhook_endpoints")).scalar()
    assert '"secret": "old"' in moved and "2026-12-04T10:00:00" in moved
    downgrade(url, "0006")
    query = "SELECT previous_secret_encrypted, previous_secret_expires_at FROM webhook_endpoints"
    with engine.begin() as connection:
        secret, expires = connection.execute(text(query)).one()
    assert secret == "old" and str(expires).startswith("2026-12-04 10:00:00")
    engine.dispose()
