"""Reads a polled route answers on the event loop: no thread-pool hop, no GIL hand-off.

A sync route's query runs on a pool thread that gives up the GIL while Postgres answers and
queues for it again after; under 64 clients those hand-offs cost more CPU than the query
(bench/api.py, docs/benchmarks.md). The hottest read, one job by id, runs here instead, with
the statement the repository builds, on a small per-process pool of psycopg async connections
in autocommit (`FTQ_DATABASE_LOOP_POOL_SIZE`). Only on Postgres and only for a session on the
engine: SQLite and the tests' rolled-back transactions keep the sync path.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from functools import cache
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import ClauseElement, Engine
from sqlalchemy.orm import Session

from ftq.shared.db import get_engine
from ftq.shared.jobs import repository
from ftq.shared.settings import get_settings

Row = dict[str, Any]


class LoopPool:
    """Autocommit async connections for one event loop, at most `size` in use at once."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection[Row]] = []
        self._slots = asyncio.Semaphore(size)

    async def fetch_one(self, sql: str, params: Mapping[str, Any]) -> Row | None:
        """The first row of a read, on a pooled connection (a stale one is replaced once)."""
        async with self._slots:
            reused = bool(self._idle)
            try:
                return await self._fetch_on(await self._take(), sql, params)
            except psycopg.OperationalError:
                if not reused:
                    raise
                # Postgres restarted or dropped an idle connection: one fresh try.
                return await self._fetch_on(await self._connect(), sql, params)

    async def close(self) -> None:
        """Close the idle connections (app shutdown)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()

    async def _take(self) -> psycopg.AsyncConnection[Row]:
        return self._idle.pop() if self._idle else await self._connect()

    async def _connect(self) -> psycopg.AsyncConnection[Row]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, row_factory=dict_row
        )

    async def _fetch_on(
        self, connection: psycopg.AsyncConnection[Row], sql: str, params: Mapping[str, Any]
    ) -> Row | None:
        try:
            cursor = await connection.execute(sql, params)
            row = await cursor.fetchone()
        except BaseException:  # failed or cancelled mid-query: its state is unknown
            await connection.close()
            raise
        self._idle.append(connection)
        return row


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPool] = weakref.WeakKeyDictionary()


def pool_for(session: Session) -> LoopPool | None:
    """This loop's pool when the session reads the process's Postgres engine, else None."""
    bind = session.bind
    if (
        not isinstance(bind, Engine)
        or bind is not get_engine()
        or bind.dialect.name != "postgresql"
    ):
        return None
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        size = get_settings().database_loop_pool_size
        pool = _pools[loop] = LoopPool(_conninfo(bind), size)
    return pool


async def close_pool() -> None:
    """Close this loop's pool, if it has one (app shutdown)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()


async def job_row(pool: LoopPool, team_id: str, job_id: str) -> SimpleNamespace | None:
    """A team's job as a row with the model's attribute names, or None when it has none."""
    sql = compiled_sql(repository.view_for_team_statement())
    row = await pool.fetch_one(sql, {"job_id": job_id, "team_id": team_id})
    return SimpleNamespace(**row) if row is not None else None


def _conninfo(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def compiled_sql(statement: ClauseElement) -> str:
    """A repository statement as psycopg SQL with `%(name)s` parameters (compiled once)."""
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    return str(statement.compile(dialect=dialect()))
