"""Admin: teams and their keys (admin token)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ftq.services.api.deps import AdminDep, SessionDep
from ftq.services.api.idempotency import AdminIdempotencyDep
from ftq.services.api.uow import commit
from ftq.shared.teams import service
from ftq.shared.teams.schemas import ApiKeyCreated, TeamCreate, TeamCreated

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/teams", status_code=status.HTTP_201_CREATED, response_model=TeamCreated)
def create_team(
    data: TeamCreate, session: SessionDep, idempotency: AdminIdempotencyDep
) -> TeamCreated | Response:
    """Create a team; its first key and signing secret are shown only here."""
    if (replay := idempotency.begin(session, data)) is not None:
        return replay
    created = service.create_team(session, data)
    idempotency.save(session, status.HTTP_201_CREATED, created, team_id=created.id)
    commit(session)
    return created


@router.post(
    "/teams/{team_id}/keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated
)
def issue_key(
    team_id: str, session: SessionDep, idempotency: AdminIdempotencyDep
) -> ApiKeyCreated | Response:
    """Issue another key for a team."""
    if (replay := idempotency.begin(session, b"")) is not None:
        return replay
    key = service.issue_key(session, team_id)
    idempotency.save(session, status.HTTP_201_CREATED, key, team_id=team_id)
    commit(session)
    return key


@router.delete("/teams/{team_id}/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(team_id: str, key_id: str, session: SessionDep, _: AdminDep) -> None:
    """Revoke a key at once."""
    service.revoke_key(session, team_id, key_id)
    commit(session)
