"""Dependencies: the request's session (committed by the route), the caller's team, admin."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Header, Query
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, object_session
from starlette.concurrency import run_in_threadpool

from ftq.shared.db import get_sessionmaker, is_autocommit, read_only
from ftq.shared.errors import Unauthorized
from ftq.shared.models import ApiKey, Team
from ftq.shared.observability.logging import bind
from ftq.shared.outbox import sends_own
from ftq.shared.security import constant_time_equals, hash_api_key
from ftq.shared.settings import get_settings
from ftq.shared.teams import service as teams


async def get_session() -> AsyncIterator[Session]:
    """One session per request, opened and closed on the event loop; routes that change state
    call `commit(session)`, which sends the tasks they enqueued (leased to this request until
    then). Closing after a commit does no I/O; a transaction left open is rolled back on a
    pool thread. A sync generator would cost two thread-pool hops on every request."""
    session = sends_own(get_sessionmaker()())
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(_roll_back_and_close, session)
        else:
            session.close()


def _roll_back_and_close(session: Session) -> None:
    session.rollback()
    session.close()


SessionDep = Annotated[Session, Depends(get_session)]


async def get_read_session() -> AsyncIterator[Session]:
    """A session for a route that only reads, opened and closed on the event loop.

    Its route runs its reads in one thread-pool call (`read_only` first: no BEGIN or ROLLBACK
    round trip), so after it nothing is left to roll back and closing does no I/O. A sync
    generator dependency would cost two more thread-pool hops per request.
    """
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        if session.in_transaction() and not is_autocommit(session):
            await run_in_threadpool(session.close)
        else:
            session.close()


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("missing 'Authorization: Bearer <key>' header")
    return authorization[7:].strip()


def get_team(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> Team:
    """The team whose key authorises the request."""
    team = teams.authenticate(session, _bearer(authorization))
    bind(team_id=team.id)
    return team


# -- a short-lived key cache, for the hot relay routes only (`CachedTeamDep`) -----------------

KEY_CACHE_SECONDS = 1.0  # a key revoked by another server process stops working within this
KEY_CACHE_SIZE = 10_000
_REVOKED = "ftq_keys_revoked"


class KeyCache:
    """Teams by API-key hash (never the key itself), each trusted for `seconds` after a lookup.

    Only keys the database accepted are kept, so a wrong or revoked key always asks it again.
    A revocation made by this process empties the cache at once (and again at its commit, so a
    lookup racing the revocation cannot keep the key); one made by another process takes effect
    here within `seconds`.
    """

    def __init__(
        self,
        seconds: float = KEY_CACHE_SECONDS,
        size: int = KEY_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.size = size
        self.clock = clock
        self._teams: dict[str, tuple[float, Team]] = {}

    def get(self, key_hash: str) -> Team | None:
        """The team found for this key less than `seconds` ago, else None."""
        found = self._teams.get(key_hash)
        if found is None:
            return None
        if self.clock() >= found[0]:
            self._teams.pop(key_hash, None)
            return None
        return found[1]

    def put(self, key_hash: str, team: Team) -> None:
        """Trust this key for `seconds` from now, for a copy of the team's columns as read now."""
        if len(self._teams) >= self.size:
            self._teams.clear()  # many distinct keys at once: start over rather than grow
        self._teams[key_hash] = (self.clock() + self.seconds, _columns_of(team))

    def clear(self) -> None:
        """Forget every key (a key was revoked)."""
        self._teams.clear()


def _columns_of(team: Team) -> Team:
    """A Team that belongs to no session, so no request's rollback or close can expire it."""
    columns = inspect(Team).column_attrs
    return Team(**{column.key: getattr(team, column.key) for column in columns})


key_cache = KeyCache()


@event.listens_for(ApiKey.revoked_at, "set")
def _key_revoked(target: ApiKey, value: Any, _old: Any, _initiator: Any) -> None:
    key_cache.clear()
    session = object_session(target)
    if session is not None:
        session.info[_REVOKED] = True


@event.listens_for(Session, "after_commit")
def _revocation_committed(session: Session) -> None:
    if session.info.pop(_REVOKED, False):
        key_cache.clear()


async def get_team_cached(
    session: ReadSessionDep, authorization: Annotated[str | None, Header()] = None
) -> Team:
    """`get_team`, answered without the database for a key it accepted in the last second.

    A cached answer is a copy of the team row that belongs to no session: read its columns only.
    """
    return await _team_for_key(authorization, partial(_authenticate_reading, session))


async def get_creating_team(
    session: SessionDep, authorization: Annotated[str | None, Header()] = None
) -> Team:
    """`get_team` for a route that creates under a lock: a key accepted in the last second is
    answered from the cache, and the route reads the team's limits again under its lock.

    The answer belongs to no session: read its columns only, never change it.
    """
    return await _team_for_key(authorization, partial(_authenticate, session))


async def _team_for_key(
    authorization: str | None, authenticate: Callable[[str, str], Team]
) -> Team:
    plaintext = _bearer(authorization)
    key_hash = hash_api_key(plaintext)
    team = key_cache.get(key_hash)
    if team is None:
        team = await run_in_threadpool(authenticate, plaintext, key_hash)
    bind(team_id=team.id)
    return team


def _authenticate_reading(session: Session, plaintext: str, key_hash: str) -> Team:
    return _authenticate(read_only(session), plaintext, key_hash)


def _authenticate(session: Session, plaintext: str, key_hash: str) -> Team:
    team = teams.authenticate(session, plaintext)
    key_cache.put(key_hash, team)
    return team


async def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
    """Only the admin token may manage teams."""
    token = get_settings().admin_token.get_secret_value()
    if not constant_time_equals(_bearer(authorization), token):
        raise Unauthorized("invalid admin token", code="invalid_admin_token")


TeamDep = Annotated[Team, Depends(get_team)]
CachedTeamDep = Annotated[Team, Depends(get_team_cached)]
CreatingTeamDep = Annotated[Team, Depends(get_creating_team)]
AdminDep = Annotated[None, Depends(require_admin)]
LimitQuery = Annotated[int, Query(ge=1, le=100, description="page size")]
AfterQuery = Annotated[str | None, Query(description="id of the last item of the previous page")]
