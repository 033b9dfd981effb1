"""OpenAI's `/v1/models` over ftq (the SDK's `client.models`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ftq.services.api.deps import SessionDep, TeamDep
from ftq.services.api.uow import commit
from ftq.shared.compat import models as service

router = APIRouter(prefix="/v1/models", tags=["openai-compatible"])


@router.get("", response_model=None)
def list_models(session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """Base models the configured providers can tune, then the team's own models."""
    return {"object": "list", "data": service.list_models(session, team)}


# Model ids hold `:` and may hold `/` (local Hugging Face names): a path parameter.
@router.get("/{model:path}", response_model=None)
def retrieve_model(model: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """One model."""
    return service.get(session, team, model)


@router.delete("/{model:path}", response_model=None)
def delete_model(model: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """Delete one of the team's fine-tuned models at its provider."""
    deleted = service.delete(session, team, model)
    commit(session)
    return deleted
