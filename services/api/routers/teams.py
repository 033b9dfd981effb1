"""The caller's own team."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import SessionDep, TeamDep
from shared.teams import service
from shared.teams.schemas import Team

router = APIRouter(prefix="/v1", tags=["team"])


@router.get("/team", response_model=Team)
def read_team(team: TeamDep, session: SessionDep) -> Team:
    """The team the key belongs to, with its quotas and its usage this month."""
    shown = Team.model_validate(team)
    shown.usage = service.usage(session, team)
    return shown
