"""The read path's database use: autocommit reads and pings only for idle connections."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from ftq.shared.db import (
    PING_AFTER_IDLE_SECONDS,
    is_autocommit,
    make_engine,
    ping_idle_connections,
    read_only,
)
from tests.services import postgres_url_or_skip

IDLE = psycopg.pq.TransactionStatus.IDLE
INTRANS = psycopg.pq.TransactionStatus.INTRANS


@pytest.fixture
def pg_engine(engine: Engine) -> Engine:
    postgres_url_or_skip()  # a failure, not a skip, where services are required (CI)
    return engine


def _status(session: Session) -> psycopg.pq.TransactionStatus:
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    return raw.info.transaction_status  # type: ignore[no-any-return,attr-defined]


def test_a_read_only_session_opens_no_transaction(pg_engine: Engine) -> None:
    with Session(pg_engine) as session:
        read_only(session)
        assert session.scalar(select(1)) == 1
        assert is_autocommit(session)
        assert _status(session) == IDLE  # no BEGIN was sent, so there is nothing to roll back


def test_an_ordinary_session_still_runs_in_a_transaction(pg_engine: Engine) -> None:
    with Session(pg_engine) as session:
        session.scalar(select(1))
        assert not is_autocommit(session)
        assert _status(session) == INTRANS


def test_read_only_keeps_a_transaction_already_open(pg_engine: Engine) -> None:
    with Session(pg_engine) as session:
        session.scalar(select(1))
        read_only(session)
        assert _status(session) == INTRANS


def test_the_pool_replaces_an_idle_connection_whose_backend_died(pg_engine: Engine) -> None:
    engine = make_engine(pg_engine.url.render_as_string(hide_password=False), pool_size=1)
    ping_idle_connections(engine, idle_seconds=0.05)
    try:
        with engine.connect() as connection:
            first = connection.scalar(text("SELECT pg_backend_pid()"))
        with pg_engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            admin.commit()
        time.sleep(0.1)
        with engine.connect() as connection:  # pinged, found dead, replaced: no error here
            assert connection.scalar(text("SELECT pg_backend_pid()")) != first
    finally:
        engine.dispose()


def test_a_busy_connection_is_not_pinged(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(pg_engine.url.render_as_string(hide_password=False), pool_size=1)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi_connection: pings.append(1))
    try:
        for _ in range(3):
            with engine.connect() as connection:  # checked in a moment ago: no ping
                connection.scalar(text("SELECT 1"))
        assert pings == []
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.1)
        with engine.connect() as connection:
            connection.scalar(text("SELECT 1"))
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_a_read_only_sqlite_session_does_not_block_a_writer(tmp_path) -> None:
    # Embedded mode: a route's cached-key lookup and its own session are two sessions.
    engine = make_engine(f"sqlite:///{tmp_path / 'ftq.sqlite3'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (body TEXT)")
    reader, writer = Session(engine), Session(engine)
    try:
        read_only(reader).execute(text("SELECT count(*) FROM notes")).scalar_one()
        assert reader.in_transaction()
        started = time.monotonic()
        writer.execute(text("INSERT INTO notes VALUES ('written')"))
        writer.commit()
        assert time.monotonic() - started < 5, "the writer waited for the reader's lock"
    finally:
        reader.close()
        writer.close()
        engine.dispose()
