"""A team's own provider keys: register (checked), list, read, rotate, revoke; never shown."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response, status

from ftq.services.api.deps import AfterQuery, LimitQuery, SessionDep, TeamDep
from ftq.services.api.idempotency import IdempotencyDep
from ftq.services.api.uow import commit
from ftq.shared.credentials import service
from ftq.shared.credentials.schemas import (
    ProviderCredential,
    ProviderCredentialCreate,
    ProviderCredentialUpdate,
)
from ftq.shared.pagination import Page

router = APIRouter(prefix="/v1", tags=["provider credentials"])


def _fingerprinted(data: ProviderCredentialCreate) -> bytes:
    """The body as the idempotency fingerprint (a digest) sees it: the same key, or another."""
    body = {**data.model_dump(mode="json"), "key": data.key.get_secret_value()}
    return json.dumps(body, sort_keys=True).encode()


@router.post(
    "/provider-credentials", status_code=status.HTTP_201_CREATED, response_model=ProviderCredential
)
def create_credential(
    data: ProviderCredentialCreate,
    session: SessionDep,
    team: TeamDep,
    idempotency: IdempotencyDep,
) -> ProviderCredential | Response:
    """Register the team's key for a provider, after one cheap call with it succeeded."""
    if (replay := idempotency.begin(session, _fingerprinted(data))) is not None:
        return replay
    created = ProviderCredential.model_validate(service.register(session, team, data))
    idempotency.save(session, status.HTTP_201_CREATED, created)
    commit(session)
    return created


@router.get("/provider-credentials", response_model=Page[ProviderCredential])
def list_credentials(
    session: SessionDep, team: TeamDep, limit: LimitQuery = 20, after: AfterQuery = None
) -> Page[ProviderCredential]:
    """The team's active credentials (key hints only)."""
    rows, more = service.list_credentials(session, team, limit=limit, after=after)
    return Page(data=[ProviderCredential.model_validate(r) for r in rows], has_more=more)


@router.get("/provider-credentials/{credential_id}", response_model=ProviderCredential)
def read_credential(credential_id: str, session: SessionDep, team: TeamDep) -> ProviderCredential:
    """One active credential (its key hint only)."""
    return ProviderCredential.model_validate(service.get(session, team, credential_id))


@router.post("/provider-credentials/{credential_id}/rotate", response_model=ProviderCredential)
def rotate_credential(
    credential_id: str, data: ProviderCredentialUpdate, session: SessionDep, team: TeamDep
) -> ProviderCredential:
    """Replace the key (checked first); jobs made with the credential use the new one."""
    rotated = service.rotate(session, team, credential_id, data)
    commit(session)
    return ProviderCredential.model_validate(rotated)


@router.delete("/provider-credentials/{credential_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_credential(credential_id: str, session: SessionDep, team: TeamDep) -> None:
    """Revoke: its jobs fail at their next provider call with provider_unavailable."""
    service.revoke(session, team, credential_id)
    commit(session)
