"""Migration 0009 (provider credentials, jobs.credential_id) up and down, SQLite and Postgres."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from ftq.shared.migrate import downgrade, upgrade

TEAM = (
    "INSERT INTO teams (id, name, max_active_jobs, signing_secret_encrypted, created_at) "
    "VALUES ('t1', 't', 1, 'x', '2026-12-01')"
)
CREDENTIAL = (
    "INSERT INTO provider_credentials (id, team_id, provider, key_encrypted, key_hint, "
    "revoked_at, created_at) VALUES (:id, 't1', 'openai', 'enc', 'abcd', :revoked, '2026-12-01')"
)


def _insert(url: str, statement: str, **values: object) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement), values)
    finally:
        engine.dispose()


def test_one_active_credential_per_team_and_provider_and_back(empty_database_url: str) -> None:
    url = empty_database_url
    upgrade(url, "0009")
    _insert(url, TEAM)
    _insert(url, CREDENTIAL, id="pcr_old", revoked="2026-12-02")
    _insert(url, CREDENTIAL, id="pcr_active", revoked=None)
    with pytest.raises(IntegrityError):
        _insert(url, CREDENTIAL, id="pcr_twin", revoked=None)
    engine = create_engine(url)
    assert "credential_id" in {c["name"] for c in inspect(engine).get_columns("jobs")}
    engine.dispose()
    downgrade(url, "0008")
    engine = create_engine(url)
    tables = inspect(engine).get_table_names()
    columns = {c["name"] for c in inspect(engine).get_columns("jobs")}
    engine.dispose()
    assert "provider_credentials" not in tables and "credential_id" not in columns
    upgrade(url, "0009")
