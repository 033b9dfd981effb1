"""The caller's own team."""

from __future__ import annotations

from fastapi import APIRouter

from ftq.services.api.deps import SessionDep, TeamDep
from ftq.services.api.uow import commit
from ftq.shared.jobs import service as jobs
from ftq.shared.teams import service
from ftq.shared.teams.schemas import SigningSecretRotated, Team

router = APIRouter(prefix="/v1", tags=["team"])


@router.get("/team", response_model=Team)
def read_team(team: TeamDep, session: SessionDep) -> Team:
    """The team the key belongs to, with its quotas and its usage this month."""
    shown = Team.model_validate(team)
    shown.usage = jobs.usage(session, team)
    return shown


@router.post("/team/rotate-signing-secret", response_model=SigningSecretRotated)
def rotate_signing_secret(team: TeamDep, session: SessionDep) -> SigningSecretRotated:
    """A new secret for jobs' own `webhook_url`; both sign for 24 hours (each rotation its own)."""
    rotated = service.rotate_signing_secret(session, team)
    commit(session)
    return rotated
