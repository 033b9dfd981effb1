"""Dependencies: the request's session (committed by the route), the caller's team, admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Query
from sqlalchemy.orm import Session

from ftq.shared.db import get_sessionmaker
from ftq.shared.errors import Unauthorized
from ftq.shared.models import Team
from ftq.shared.observability.logging import bind
from ftq.shared.security import constant_time_equals
from ftq.shared.settings import get_settings
from ftq.shared.teams import service as teams


def get_session() -> Iterator[Session]:
    """One session per request; routes that change state call `commit(session)`."""
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("missing 'Authorization: Bearer <key>' header")
    return authorization[7:].strip()


def get_team(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> Team:
    """The team whose key authorises the request."""
    team = teams.authenticate(session, _bearer(authorization))
    bind(team_id=team.id)
    return team


def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
    """Only the admin token may manage teams."""
    token = get_settings().admin_token.get_secret_value()
    if not constant_time_equals(_bearer(authorization), token):
        raise Unauthorized("invalid admin token", code="invalid_admin_token")


TeamDep = Annotated[Team, Depends(get_team)]
AdminDep = Annotated[None, Depends(require_admin)]
LimitQuery = Annotated[int, Query(ge=1, le=100, description="page size")]
AfterQuery = Annotated[str | None, Query(description="id of the last item of the previous page")]
