"""Provider credential queries."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ftq.shared.models import Job, ProviderCredential
from ftq.shared.pagination import paginate


def add(session: Session, credential: ProviderCredential) -> bool:
    """Insert a credential; False when the team already has an active one for the provider."""
    try:
        with session.begin_nested():
            session.add(credential)
            session.flush()
    except IntegrityError:
        return False
    return True


def get(session: Session, credential_id: str) -> ProviderCredential | None:
    """A credential by id, revoked or not."""
    return session.get(ProviderCredential, credential_id)


def get_active(
    session: Session, team_id: str, credential_id: str, *, lock: bool = False
) -> ProviderCredential | None:
    """A team's active credential by id (locked when it is about to change)."""
    query = select(ProviderCredential).where(
        ProviderCredential.id == credential_id,
        ProviderCredential.team_id == team_id,
        ProviderCredential.revoked_at.is_(None),
    )
    return session.scalar(query.with_for_update() if lock else query)


def active_for(session: Session, team_id: str, provider: str) -> ProviderCredential | None:
    """The team's active credential for a provider."""
    query = select(ProviderCredential).where(
        ProviderCredential.team_id == team_id,
        ProviderCredential.provider == provider,
        ProviderCredential.revoked_at.is_(None),
    )
    return session.scalar(query)


def active_id_for(session: Session, team_id: str, provider: str) -> str | None:
    """The id of the team's active credential for a provider (a Core read: every job create)."""
    return session.scalar(_ACTIVE_ID, {"team_id": team_id, "provider": provider})


_CREDENTIALS = ProviderCredential.__table__
_ACTIVE_ID = select(_CREDENTIALS.c.id).where(
    _CREDENTIALS.c.team_id == bindparam("team_id"),
    _CREDENTIALS.c.provider == bindparam("provider"),
    _CREDENTIALS.c.revoked_at.is_(None),
)


def list_active(
    session: Session, team_id: str, *, limit: int, after: str | None
) -> tuple[list[ProviderCredential], bool]:
    """A page of a team's active credentials."""
    query = select(ProviderCredential).where(
        ProviderCredential.team_id == team_id, ProviderCredential.revoked_at.is_(None)
    )
    return paginate(session, query, ProviderCredential.id, limit=limit, after=after)


def credential_ids_of_jobs(session: Session, job_ids: Iterable[str]) -> dict[str, str | None]:
    """Each job's credential id, where that credential is for the job's current provider."""
    wanted = set(job_ids)
    if not wanted:
        return {}
    query = (
        select(Job.id, ProviderCredential.id)
        .outerjoin(
            ProviderCredential,
            (ProviderCredential.id == Job.credential_id)
            & (ProviderCredential.provider == Job.provider),
        )
        .where(Job.id.in_(wanted))
    )
    return {job_id: credential_id for job_id, credential_id in session.execute(query)}
