"""Engine and session factory; the request or task boundary commits, nothing below it does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from ftq.shared.settings import get_settings


def make_engine(url: str, pool_size: int = 30, max_overflow: int = 10) -> Engine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite, idle ping on Postgres."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
    ping_idle_connections(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 2.0
_CHECKED_IN_AT = "ftq_checked_in_at"


def ping_idle_connections(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Ping a pooled connection before use only when it sat idle for `idle_seconds`.

    `pool_pre_ping` pings on every checkout: one more round trip per request, a fifth of a read's
    time under load. A connection that served a request a moment ago is alive; one idle for a
    while (a database restart, a proxy's idle timeout) is pinged and, if dead, replaced. A restart
    between two requests on a busy connection fails that one request, and SQLAlchemy's disconnect
    handling then invalidates the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_CHECKED_IN_AT)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"idle connection is dead: {error}") from error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so the "begin" hook below decides how transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # Deferred transactions that read and then write deadlock under concurrent worker threads;
    # taking the write lock up front serialises them instead. A `read_only` session never
    # writes: a deferred BEGIN lets it read beside a writer (WAL) instead of queueing for the lock.
    reading = connection.get_execution_options().get(_SQLITE_READ_ONLY)
    connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(
        settings.resolved_database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    """The process-wide session factory."""
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


_AUTOCOMMIT = "ftq_autocommit"
_SQLITE_READ_ONLY = "ftq_sqlite_read_only"


def read_only(session: Session) -> Session:
    """Run this request's reads on an autocommit connection: no BEGIN or ROLLBACK round trip.

    For routes that only read: each statement sees the latest committed data on its own. A session
    already in a transaction, or bound to a connection (tests), keeps its transaction.
    """
    bind = session.bind
    if not isinstance(bind, Engine) or session.in_transaction():
        return session
    if bind.dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        session.info[_AUTOCOMMIT] = True
    elif bind.dialect.name == "sqlite":
        # Holding the write lock for a whole request would block the route's other session.
        session.connection(execution_options={_SQLITE_READ_ONLY: True})
    return session


def is_autocommit(session: Session) -> bool:
    """Whether `read_only` put this session on an autocommit connection."""
    return bool(session.info.get(_AUTOCOMMIT))


def reset_engine() -> None:
    """Dispose the engine (tests and forked workers)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error (used by tasks and the CLI)."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
