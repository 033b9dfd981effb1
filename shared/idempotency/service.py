"""Idempotency keys: claim, replay or refuse, and store the response with the created object."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from ftq.shared.errors import BadRequest, Conflict
from ftq.shared.idempotency import repository
from ftq.shared.models import IdempotencyKey
from ftq.shared.security import decrypt, encrypt
from ftq.shared.timeutil import as_utc, utcnow

TTL = timedelta(hours=24)
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
ADMIN_PREFIX = "admin:"


@dataclass(frozen=True)
class StoredResponse:
    """The first response given to a key."""

    status_code: int
    body: str


def fingerprint(method: str, path: str, payload: bytes) -> str:
    """What identifies a request: method, path and body (or a digest of the uploaded bytes)."""
    digest = hashlib.sha256(f"{method.upper()} {path}\n".encode())
    digest.update(payload)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """A key of 1 to 255 visible ASCII characters."""
    if not KEY_PATTERN.fullmatch(key):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            param="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    return key


def admin_key(key: str) -> str:
    """The admin's key as stored: apart from team keys, and within the column's 255 characters."""
    return ADMIN_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def begin(
    session: Session, team_id: str | None, key: str, request_fingerprint: str
) -> StoredResponse | None:
    """Claim a key for this transaction (team None: the admin's): replay, or None to go ahead."""
    if not repository.try_lock(session, team_id, key):
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry once it finished",
            param="Idempotency-Key",
            code="idempotency_key_in_progress",
        )
    row = repository.get(session, team_id, key)
    if row is not None and (as_utc(row.expires_at) or utcnow()) <= utcnow():
        repository.remove(session, row)
        row = None
    if row is None:
        return None
    if row.fingerprint != request_fingerprint:
        raise Conflict(
            "this Idempotency-Key was used for a different request; use a new key",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return StoredResponse(row.response_status, decrypt(row.response_body))


def store(
    session: Session, team_id: str, key: str, request_fingerprint: str, response: StoredResponse
) -> None:
    """Keep the response (encrypted: it may hold a secret shown once) for 24 hours."""
    now = utcnow()
    repository.add(
        session,
        IdempotencyKey(
            team_id=team_id,
            key=key,
            fingerprint=request_fingerprint,
            response_status=response.status_code,
            response_body=encrypt(response.body),
            created_at=now,
            expires_at=now + TTL,
        ),
    )


def purge_expired(session: Session) -> int:
    """Delete keys older than 24 hours."""
    return repository.delete_expired(session, utcnow())
