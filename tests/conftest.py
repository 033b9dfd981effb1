"""Test setup: real Postgres (migrated once) with a rolled-back transaction per test.

Falls back to SQLite when Postgres is unreachable, unless FTQ_REQUIRE_SERVICES=1 (CI), where a
missing service is a failure, never a silent skip.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import drop_database, fresh_database, postgres_url_or_none, require_services

_DATA_DIR = Path(tempfile.mkdtemp(prefix="ftq-tests-"))
_PG_URL = postgres_url_or_none()
if _PG_URL is not None and "FTQ_TEST_DATABASE_URL" not in os.environ:
    # One database per run, so parallel runs on one machine never share state.
    _PG_URL = fresh_database("ftq_test")
    atexit.register(drop_database, _PG_URL)
if _PG_URL is None and require_services():
    raise RuntimeError("FTQ_REQUIRE_SERVICES=1 but PostgreSQL at 127.0.0.1:5432 is unreachable")
TEST_DATABASE_URL = _PG_URL or f"sqlite:///{_DATA_DIR / 'test.sqlite3'}"

os.environ.update(
    {
        "FTQ_ENVIRONMENT": "development",
        "FTQ_DATA_DIR": str(_DATA_DIR),
        "FTQ_DATABASE_URL": TEST_DATABASE_URL,
        "FTQ_BROKER_URL": "memory://",
        "FTQ_EMBEDDED_WORKER": "false",
        "FTQ_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1", "localhost"]',
        "FTQ_PROVIDER": "emulator",
        # The fixtures' length checks need a model with a published context; the catalog's
        # own default (tests/unit/test_catalog.py) has none.
        "FTQ_DEFAULT_MODEL": "gpt-4o-mini-2024-07-18",
        # Exact queue positions in every test (tests/unit/test_queue_position_cache.py covers
        # the per-process cache itself).
        "FTQ_QUEUE_POSITION_CACHE_SECONDS": "0",
    }
)

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from ftq.services.api import uow  # noqa: E402
from ftq.services.api.deps import get_read_session, get_session  # noqa: E402
from ftq.services.api.main import create_app  # noqa: E402
from ftq.shared import wiring  # noqa: E402
from ftq.shared.db import make_engine  # noqa: E402
from ftq.shared.migrate import downgrade, upgrade  # noqa: E402
from ftq.shared.outbox import relay  # noqa: E402

wiring.install()


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The test database, migrated from scratch once per run."""
    downgrade(TEST_DATABASE_URL, "base")
    upgrade(TEST_DATABASE_URL, "head")
    engine = make_engine(TEST_DATABASE_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    session.close()
    transaction.rollback()
    connection.close()


class SentTasks(list[tuple[str, list[Any]]]):
    """Tasks the request boundary relayed to the broker."""

    def names(self) -> list[str]:
        """Just the task names, in order."""
        return [name for name, _ in self]


@pytest.fixture
def sent_tasks(session: Session, monkeypatch: pytest.MonkeyPatch) -> SentTasks:
    """Relay through the test's own session into a list instead of a broker."""
    sent = SentTasks()

    def relay_into_list(messages: object = None) -> int:
        return relay(session, lambda task, args: sent.append((task, list(args))))

    monkeypatch.setattr(uow, "send_own", relay_into_list)
    return sent


@pytest.fixture
def client(session: Session, sent_tasks: SentTasks) -> Iterator[TestClient]:
    """The API over HTTP, sharing the test's session."""
    app = create_app()
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[get_read_session] = lambda: session
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
