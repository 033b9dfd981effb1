"""Which real services this machine offers; CI demands them (FTQ_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import os
import random
import socket
import uuid
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get(
    "FTQ_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FTQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def require_services() -> bool:
    """Whether a missing service must fail the run instead of falling back."""
    return os.environ.get("FTQ_REQUIRE_SERVICES") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_url_or_none() -> str | None:
    """The test Postgres URL when it answers."""
    return POSTGRES_URL if _reachable("127.0.0.1", 5432) else None


def fresh_database(prefix: str) -> str:
    """Create an empty Postgres database and return its SQLAlchemy URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by fresh_database (connections are closed by force)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_url_or_skip() -> str:
    """A Redis URL on a random database (parallel runs rarely meet); skip or fail when down."""
    if _reachable("127.0.0.1", 6379):
        if "FTQ_TEST_REDIS_URL" in os.environ:
            return REDIS_URL
        return f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    if require_services():
        pytest.fail("FTQ_REQUIRE_SERVICES=1 but Redis at 127.0.0.1:6379 is unreachable")
    pytest.skip("Redis is not running here")


def postgres_url_or_skip() -> str:
    """The test Postgres URL; skipped (or failed in CI) when Postgres is down."""
    url = postgres_url_or_none()
    if url:
        return url
    if require_services():
        pytest.fail("FTQ_REQUIRE_SERVICES=1 but PostgreSQL at 127.0.0.1:5432 is unreachable")
    pytest.skip("PostgreSQL is not running here")


def shared_data_or_skip() -> Path:
    """../shared/data (or FTQ_SHARED_DATA); skipped on a user's clone, required in CI."""
    root = Path(__file__).resolve().parents[1]
    folder = Path(os.environ.get("FTQ_SHARED_DATA", root.parent / "shared" / "data"))
    if not folder.is_absolute():
        folder = (root / folder).resolve()
    if folder.is_dir():
        return folder
    if require_services():
        pytest.fail(f"FTQ_REQUIRE_SERVICES=1 but shared data folder {folder} is missing")
    pytest.skip("shared data folder is not present")
