"""The caller's own team."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import TeamDep
from shared.teams.schemas import Team

router = APIRouter(prefix="/v1", tags=["team"])


@router.get("/team", response_model=Team)
def read_team(team: TeamDep) -> Team:
    """The team the key belongs to, with its quotas."""
    return Team.model_validate(team)
