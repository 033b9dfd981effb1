"""Teams and their keys: creation, key issue and revocation, authentication."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ftq.shared.errors import Conflict, NotFound, Unauthorized
from ftq.shared.ids import new_id
from ftq.shared.models import ApiKey, Team
from ftq.shared.security import (
    ROTATION_OVERLAP,
    after_rotation,
    encrypt,
    hash_api_key,
    new_api_key,
)
from ftq.shared.teams import repository
from ftq.shared.teams.schemas import (
    ApiKeyCreated,
    SigningSecretRotated,
    TeamCreate,
    TeamCreated,
)
from ftq.shared.teams.schemas import Team as TeamOut
from ftq.shared.timeutil import utcnow
from ftq.shared.webhooks.signing import generate_secret


def create_team(session: Session, data: TeamCreate) -> TeamCreated:
    """Create a team with its first key and signing secret."""
    if repository.get_team_by_name(session, data.name):
        raise Conflict(f"a team named {data.name!r} already exists", param="name")
    secret = generate_secret()
    team = Team(
        id=new_id("team"),
        name=data.name,
        max_active_jobs=data.max_active_jobs,
        monthly_budget_usd=data.monthly_budget_usd,
        signing_secret_encrypted=encrypt(secret),
    )
    repository.add(session, team)
    key = issue_key(session, team.id)
    base = TeamOut.model_validate(team).model_dump()
    return TeamCreated(**base, api_key=key, signing_secret=secret)


def issue_key(session: Session, team_id: str) -> ApiKeyCreated:
    """Issue a new key for a team; the plaintext is returned once and stored hashed."""
    if repository.get_team(session, team_id) is None:
        raise NotFound(f"no team {team_id}", param="id")
    plaintext = new_api_key()
    key = ApiKey(
        id=new_id("key"),
        team_id=team_id,
        key_hash=hash_api_key(plaintext),
        display_prefix=plaintext[:12],
    )
    repository.add(session, key)
    return ApiKeyCreated(id=key.id, key=plaintext, prefix=key.display_prefix)


def revoke_key(session: Session, team_id: str, key_id: str) -> None:
    """Revoke one of a team's keys."""
    key = repository.get_key(session, team_id, key_id)
    if key is None:
        raise NotFound(f"no key {key_id} for team {team_id}", param="key_id")
    key.revoked_at = key.revoked_at or utcnow()
    session.flush()


def authenticate(session: Session, plaintext: str) -> Team:
    """The team owning a bearer key, or 401."""
    team = repository.team_for_active_key(session, hash_api_key(plaintext))
    if team is None:
        raise Unauthorized("invalid or revoked API key")
    return team


def get_team(session: Session, team_id: str) -> Team:
    """A team by id, or 404."""
    team = repository.get_team(session, team_id)
    if team is None:
        raise NotFound(f"no team {team_id}", param="id")
    return team


def rotate_signing_secret(session: Session, team: Team) -> SigningSecretRotated:
    """A new secret for the team's job `webhook_url` deliveries; the old one signs for a day."""
    secret, now = generate_secret(), utcnow()
    team.previous_signing_secrets = after_rotation(
        team.signing_secret_encrypted, list(team.previous_signing_secrets), now
    )
    team.signing_secret_encrypted = encrypt(secret)
    session.flush()
    return SigningSecretRotated(signing_secret=secret, previous_valid_until=now + ROTATION_OVERLAP)
