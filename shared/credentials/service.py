"""Per-team provider credentials: register (checked with one cheap call), rotate, revoke, use.

A team may register its own key for a provider (the fields it takes are the plugin's
`capabilities.credential_fields`). The key is checked with one cheap provider call before it is
stored, encrypted (ftq.shared.security), and never shown again: reads show its last four
characters. A job records the team's active credential when it is created and is followed with
it for its whole life; rotation swaps the key under the same id. A job whose credential was
revoked fails at its next provider call with `provider_unavailable` and the reason. Teams
without a credential use the gateway's own keys.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from ftq.shared.credentials import repository
from ftq.shared.credentials.schemas import (
    FIELD_NAMES,
    ProviderCredentialCreate,
    ProviderCredentialUpdate,
)
from ftq.shared.errors import (
    AppError,
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)
from ftq.shared.ids import new_id
from ftq.shared.models import Eval, Job, ProviderCredential, Team
from ftq.shared.observability.redaction import MASK, redact, register_secret
from ftq.shared.providers.base import ProviderError, ProviderRetryable, ProviderUnavailable
from ftq.shared.providers.plugins import Credential
from ftq.shared.providers.registry import get_plugin, get_provider
from ftq.shared.security import decrypt, encrypt
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import as_utc, utcnow
from ftq.shared.webhooks.ssrf import InvalidWebhookURL, check_url

log = logging.getLogger(__name__)

HINT_LENGTH = 4
URL_FIELDS = ("base_url", "azure_endpoint")


class CredentialRevoked(ProviderUnavailable):
    """A job's team credential was revoked: the job cannot be followed with it any more."""


# -- the team's API ---------------------------------------------------------------------------


def register(session: Session, team: Team, data: ProviderCredentialCreate) -> ProviderCredential:
    """Check the key with one provider call, then store it encrypted (one active per provider)."""
    _check_fields(data)
    _check_urls(data)
    existing = repository.active_for(session, team.id, data.provider)
    if existing is not None:
        raise _already(data.provider, existing.id)
    key = data.key.get_secret_value()
    credential = Credential(
        api_key=key,
        base_url=data.base_url,
        organization=data.organization,
        azure_endpoint=data.azure_endpoint,
    )
    check_key(data.provider, credential)
    row = ProviderCredential(
        id=new_id("pcr"),
        team_id=team.id,
        provider=data.provider,
        key_encrypted=encrypt(key),
        key_hint=key[-HINT_LENGTH:],
        base_url=data.base_url,
        organization=data.organization,
        azure_endpoint=data.azure_endpoint,
    )
    if not repository.add(session, row):
        raise _already(data.provider, None)
    log.info("team %s registered provider credential %s for %s", team.id, row.id, row.provider)
    return row


def list_credentials(
    session: Session, team: Team, *, limit: int, after: str | None
) -> tuple[list[ProviderCredential], bool]:
    """A page of the team's active credentials."""
    return repository.list_active(session, team.id, limit=limit, after=after)


def get(
    session: Session, team: Team, credential_id: str, *, lock: bool = False
) -> ProviderCredential:
    """A team's active credential, or 404 (another team's and revoked ones too)."""
    row = repository.get_active(session, team.id, credential_id, lock=lock)
    if row is None:
        raise NotFound(f"no provider credential {credential_id}", param="id")
    return row


def rotate(
    session: Session, team: Team, credential_id: str, data: ProviderCredentialUpdate
) -> ProviderCredential:
    """Check the new key where the old one is used, then replace the old one with it."""
    row = get(session, team, credential_id, lock=True)
    key = data.key.get_secret_value()
    check_key(row.provider, _credential(row, api_key=key))
    row.key_encrypted, row.key_hint = encrypt(key), key[-HINT_LENGTH:]
    row.rotated_at = utcnow()
    session.flush()
    log.info("team %s rotated provider credential %s", team.id, row.id)
    return row


def revoke(session: Session, team: Team, credential_id: str) -> None:
    """Stop using a credential and forget its key; jobs made with it fail at their next call."""
    row = get(session, team, credential_id, lock=True)
    row.revoked_at = utcnow()
    row.key_encrypted = ""  # never used again: nothing to decrypt after a leak
    session.flush()
    log.info("team %s revoked provider credential %s", team.id, row.id)


# -- using credentials ------------------------------------------------------------------------


def resolve(session: Session, team_id: str, provider: str) -> Credential | None:
    """The team's active credential for a provider; None means the gateway's own settings."""
    row = repository.active_for(session, team_id, provider)
    return _credential(row) if row is not None else None


def active_id(session: Session, team_id: str, provider: str) -> str | None:
    """The id of the team's active credential for a provider, which a new job records."""
    return repository.active_id_for(session, team_id, provider)


def for_job(session: Session, job: Job) -> Credential | None:
    """The credential a job was created with (None: the gateway's); CredentialRevoked if gone."""
    if job.credential_id is None:
        return None
    return load(session, job.credential_id, job.provider)


def for_job_id(session: Session, job_id: str) -> Credential | None:
    """`for_job` by the job's id (None for a job that no longer exists)."""
    job = session.get(Job, job_id)
    return for_job(session, job) if job is not None else None


def load(session: Session, credential_id: str | None, provider: str) -> Credential | None:
    """A credential by id for `provider`; None for no id or another provider's (a moved job)."""
    row = repository.get(session, credential_id) if credential_id else None
    if row is None or row.provider != provider:
        return None
    if row.revoked_at is not None:
        raise revoked(row)
    return _credential(row)


def for_eval(session: Session, eval_id: str, provider: str) -> Credential | None:
    """An eval's key at `provider`: its job's (the tuned model lives there), else the team's."""
    row = session.get(Eval, eval_id)
    if row is None:
        return None
    job = session.get(Job, row.job_id) if row.job_id else None
    if job is not None and job.provider == provider and job.credential_id is not None:
        return for_job(session, job)
    return resolve(session, row.team_id, provider)


def credential_ids_of_jobs(session: Session, job_ids: list[str]) -> dict[str, str | None]:
    """Each job's credential at its current provider (None: the gateway's), for grouping."""
    return repository.credential_ids_of_jobs(session, job_ids)


def revoked(row: ProviderCredential) -> CredentialRevoked:
    """The error a job's next provider call fails with once its credential was revoked."""
    when = as_utc(row.revoked_at)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "an unknown time"
    return CredentialRevoked(
        f"the team's {row.provider} credential {row.id} was revoked at {stamp}; this job was "
        "created with it and is not followed with another key: register a new credential and "
        "create the job again",
        code="provider_unavailable",
    )


def _credential(row: ProviderCredential, *, api_key: str | None = None) -> Credential:
    key = api_key if api_key is not None else decrypt(row.key_encrypted)
    register_secret(key)  # an SDK error that echoes it is masked in every log line
    return Credential(
        api_key=key,
        base_url=row.base_url,
        organization=row.organization,
        azure_endpoint=row.azure_endpoint,
        label=f"team credential {row.id}",
    )


# -- checks -----------------------------------------------------------------------------------


def _check_fields(data: ProviderCredentialCreate) -> None:
    """Refuse (422, naming it) a field the provider does not take."""
    taken = get_plugin(data.provider).capabilities.credential_fields
    if "api_key" not in taken:
        raise Unprocessable(
            f"the {data.provider} provider takes no team credentials", param="provider"
        )
    names = [name for name, field in FIELD_NAMES.items() if field in taken]
    for name, field in FIELD_NAMES.items():
        if field not in taken and getattr(data, name) is not None:
            raise Unprocessable(
                f"the {data.provider} provider does not take {name}; it takes {', '.join(names)}",
                param=name,
            )


def _check_urls(data: ProviderCredentialCreate) -> None:
    """The gateway calls these URLs: http(s) only, and never into its own network."""
    settings = get_settings()
    for name in URL_FIELDS:
        url = getattr(data, name)
        if url is None:
            continue
        try:
            check_url(
                url,
                allow_hosts=settings.webhook_allow_hosts,
                require_https=settings.environment == "production",
            )
        except InvalidWebhookURL as exc:
            raise Unprocessable(f"{name} refused: {exc.reason}", param=name) from None


def _already(provider: str, existing: str | None) -> Conflict:
    which = f" ({existing})" if existing else ""
    return Conflict(
        f"the team already has an active {provider} credential{which}; rotate it or revoke it "
        "first",
        param="provider",
        code="credential_exists",
    )


def check_key(provider: str, credential: Credential) -> None:
    """One cheap call with the key; a refusal is a 4xx that never echoes the key."""
    try:
        client = get_provider(provider, credential=credential)
        check = getattr(client, "check_credential", None)
        if check is not None:
            check()
    except ProviderError as exc:
        raise _refusal(provider, credential, exc) from None


def _refusal(provider: str, credential: Credential, exc: ProviderError) -> AppError:
    """What the team is told when the check call failed (the key masked wherever it appears)."""
    said = redact(exc.message).replace(credential.api_key, MASK)
    where = "base_url" if credential.base_url else "azure_endpoint"
    where = where if getattr(credential, where) else "provider"
    if isinstance(exc, ProviderRetryable) and exc.status is None:
        return Unprocessable(
            f"the {provider} provider could not be reached to check the key ({said}); nothing "
            "was saved",
            param=where,
            code="credential_check_failed",
        )
    if isinstance(exc, ProviderRetryable):
        retry = {"retry-after": str(int(exc.retry_after))} if exc.retry_after else None
        return ServiceUnavailable(
            f"the {provider} provider could not check the key now ({exc.status}); try again",
            headers=retry,
        )
    if exc.status == 401:
        said = "the key was not accepted"
    return BadRequest(
        f"the {provider} provider refused this key ({exc.status or exc.code}: {said}); "
        "nothing was saved",
        param="key",
        code="invalid_credential",
    )
