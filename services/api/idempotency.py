"""The `Idempotency-Key` header of create POSTs: replay the first response, refuse a reuse."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ftq.services.api.deps import AdminDep, CreatingTeamDep, TeamDep
from ftq.shared.idempotency import service
from ftq.shared.idempotency.service import StoredResponse

REPLAYED_HEADER = "Idempotent-Replayed"


class Idempotency:
    """One request's key (or none): begin before creating, save before committing."""

    def __init__(self, request: Request, team_id: str | None, key: str | None) -> None:
        self.method = request.method
        self.path = request.url.path
        self.team_id = team_id  # None: the admin's key, kept under the team it creates or serves
        self.key = service.check_key(key) if key is not None else None
        if self.key is not None and team_id is None:
            self.key = service.admin_key(self.key)
        self.fingerprint = ""

    def begin(self, session: Session, payload: BaseModel | bytes) -> Response | None:
        """The stored response to replay, or None when the request should run."""
        if self.key is None:
            return None
        if isinstance(payload, BaseModel):
            payload = json.dumps(payload.model_dump(mode="json"), sort_keys=True).encode()
        self.fingerprint = service.fingerprint(self.method, self.path, payload)
        stored = service.begin(session, self.team_id, self.key, self.fingerprint)
        if stored is None:
            return None
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={REPLAYED_HEADER: "true"},
        )

    def save(
        self, session: Session, status_code: int, body: Any, team_id: str | None = None
    ) -> None:
        """Store the response in the request's transaction (no-op without a key)."""
        if self.key is None:
            return
        owner = team_id or self.team_id
        assert owner is not None, "an admin's key is stored under the team it concerns"
        text = json.dumps(jsonable_encoder(body), ensure_ascii=False, separators=(",", ":"))
        stored = StoredResponse(status_code, text)
        service.store(session, owner, self.key, self.fingerprint, stored)


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="retry-safe creation: the same key and body replay the first response",
    ),
]


async def get_idempotency(
    request: Request,
    team: TeamDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Idempotency:
    """The request's idempotency key, scoped to the caller's team."""
    return Idempotency(request, team.id, idempotency_key)


async def get_creating_idempotency(
    request: Request,
    team: CreatingTeamDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Idempotency:
    """`get_idempotency` for the routes authenticated by `CreatingTeamDep`."""
    return Idempotency(request, team.id, idempotency_key)


async def get_admin_idempotency(
    request: Request,
    _: AdminDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Idempotency:
    """The request's idempotency key, scoped to the admin (one namespace for all teams)."""
    return Idempotency(request, None, idempotency_key)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
CreatingIdempotencyDep = Annotated[Idempotency, Depends(get_creating_idempotency)]
AdminIdempotencyDep = Annotated[Idempotency, Depends(get_admin_idempotency)]
