"""`/v1/chat/completions`: the caller's body, routed by its model to the provider that serves it.

`provider:model` names the provider; a fine-tuned model (or checkpoint) goes to the provider of
the team's job that made it, and is a 404 for every other team; anything else goes to the
server's default provider. The body reaches the provider as sent (unknown fields too, so new
OpenAI parameters keep working) with only `model` rewritten, and the provider's answer comes back
as-is: JSON, or its server-sent events byte for byte. Provider errors keep their status and
OpenAI's body; ftq's own provider keys never show.

Every completion needs the team's provider credential, so its lookup is reused for up to
CREDENTIAL_CACHE_SECONDS in this process: a credential registered, rotated or revoked through this
process counts at once, one changed by another process within that second.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from ftq.shared.credentials import service as credentials
from ftq.shared.errors import AppError, BadRequest, NotFound
from ftq.shared.jobs import repository as jobs_repo
from ftq.shared.jobs.service import is_tuned_name
from ftq.shared.models import ProviderCredential, Team
from ftq.shared.observability.redaction import redact
from ftq.shared.providers.base import Provider, ProviderError, ProviderRetryable
from ftq.shared.providers.plugins import Credential
from ftq.shared.providers.registry import (
    check_configured,
    configured_providers,
    get_provider,
    provider_names,
)
from ftq.shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

LOCAL_PREFIX = "local:"
MAX_CACHED_PROVIDERS = 256
# A team's credential lookup is reused this long in this process; a change made by this process
# takes effect at once, one made by another process within this many seconds.
CREDENTIAL_CACHE_SECONDS = 1.0
MAX_CACHED_CREDENTIALS = 10_000
_credentials: dict[tuple[str, str], tuple[float, Credential | None]] = {}
_clock = time.monotonic
_CREDENTIAL_CHANGED = "ftq_provider_credential_changed"
_providers: dict[tuple[str, Credential | None], tuple[Settings, Provider]] = {}


@dataclass(frozen=True)
class Routed:
    """Where a request goes: the provider, and the body as that provider must see it."""

    name: str
    provider: Provider
    body: dict[str, Any]

    @property
    def streams(self) -> bool:
        """Whether the caller asked for server-sent events."""
        return self.body.get("stream") is True


class ProviderAnswer(AppError):
    """A provider's error answer, relayed with its status, type, code and param."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str,
        code: str | None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(redact(message), param=param, headers=headers)
        self.status_code = status
        self.error_type = error_type
        self.provider_code = code

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's error body (`code` may be null, as the provider sent it)."""
        error = {"type": self.error_type, "code": self.provider_code}
        return {"error": {**error, "message": self.message, "param": self.param}}


# -- routing ------------------------------------------------------------------------------------


def route(session: Session, team: Team, body: dict[str, Any]) -> Routed:
    """The provider and the provider's body for a chat completion request."""
    model = _checked_model(body)
    name, model = provider_for(session, team, model)
    credential = team_credential(session, team.id, name)
    provider = provider_named(name, credential) if credential else provider_named(name)
    return Routed(name, provider, {**body, "model": model})


def _checked_model(body: dict[str, Any]) -> str:
    """`model` (a string) and `messages` (a list), as OpenAI requires them."""
    for param, kind in (("model", str), ("messages", list)):
        if param not in body or body[param] is None:
            raise BadRequest(f"Missing required parameter: '{param}'.", param=param)
        if not isinstance(body[param], kind):
            raise BadRequest(f"Invalid type for '{param}'.", param=param, code="invalid_type")
    model: str = body["model"]
    return model


def provider_for(session: Session, team: Team, model: str) -> tuple[str, str]:
    """(provider, the provider's model name) for the model a caller named."""
    prefix, colon, rest = model.partition(":")
    named = prefix if colon and prefix in provider_names() else None
    if named and not (named == "local" and is_tuned_name(model)):
        model = rest  # a local fine-tuned model keeps its `local:` name: that is its name
    if is_tuned_name(model):
        found = jobs_repo.tuned_model_provider(session, team.id, model)
        if found is None:
            raise NotFound(
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        named = named or found
    elif colon and named is None:
        named = prefix  # not a provider: refused below, naming the choices
    name = named or get_settings().provider
    _check(name)
    return name, model


def _check(name: str) -> None:
    """A 400 naming the usable providers when `name` is unknown or not configured here."""
    try:
        check_configured(name)
    except AppError as exc:
        usable = ", ".join(configured_providers()) or "none"
        raise BadRequest(
            f"{exc.message}; name a provider as `provider:model` (providers: "
            f"{', '.join(provider_names())}; configured here: {usable})",
            param="model",
            code=exc.code,
        ) from exc


def team_credential(session: Session, team_id: str, name: str) -> Credential | None:
    """The team's credential for provider `name` (None: the server's), looked up at most once a
    second per team and provider in this process (every completion needs it)."""
    found = _credentials.get((team_id, name))
    if found is not None and _clock() < found[0]:
        return found[1]
    credential = credentials.resolve(session, team_id, name)
    if len(_credentials) >= MAX_CACHED_CREDENTIALS:
        _credentials.clear()
    _credentials[(team_id, name)] = (_clock() + CREDENTIAL_CACHE_SECONDS, credential)
    return credential


def _credential_changed(target: ProviderCredential, *_: Any) -> None:
    """A credential registered, rotated or revoked here: forget every lookup (now and at commit,
    so a lookup racing the change cannot keep the old answer)."""
    _credentials.clear()
    session = object_session(target)
    if session is not None:
        session.info[_CREDENTIAL_CHANGED] = True


for _attribute in (ProviderCredential.key_encrypted, ProviderCredential.revoked_at):
    event.listen(_attribute, "set", _credential_changed)


@event.listens_for(Session, "after_commit")
def _credential_change_committed(session: Session) -> None:
    if session.info.pop(_CREDENTIAL_CHANGED, False):
        _credentials.clear()


def provider_named(name: str, credential: Credential | None = None) -> Provider:
    """The provider `name` with a team's or the server's key, built once per settings and key."""
    settings = get_settings()
    cached = _providers.get((name, credential))
    if cached is None or cached[0] is not settings:
        if len(_providers) >= MAX_CACHED_PROVIDERS:
            _providers.clear()  # rotated keys leave entries behind: start again
        built = (settings, get_provider(name, settings, credential))
        cached = _providers[(name, credential)] = built
    return cached[1]


# -- calling ------------------------------------------------------------------------------------


def complete(routed: Routed) -> dict[str, Any]:
    """The provider's `chat.completion` JSON."""
    try:
        return routed.provider.chat_completion(routed.body)
    except ProviderError as exc:
        raise relayed(routed.name, exc) from exc


def stream(routed: Routed) -> tuple[bytes, Iterator[bytes]]:
    """(first bytes, the rest) of the provider's events, opened now so errors keep a status."""
    try:
        events = routed.provider.chat_completion_stream(routed.body)
        first = next(events, b"")
    except ProviderError as exc:
        raise relayed(routed.name, exc) from exc
    return first, _rest(routed.name, events)


def _rest(name: str, events: Iterator[bytes]) -> Iterator[bytes]:
    """The stream; a provider failure half-way ends it with OpenAI's in-stream error event."""
    try:
        yield from events
    except ProviderError as exc:
        error = relayed(name, exc).to_dict()
        yield b"data: " + json.dumps(error).encode() + b"\n\n"


def relayed(name: str, exc: ProviderError) -> ProviderAnswer:
    """A provider error as the caller's error: the provider's status and OpenAI body."""
    if exc.status is None and isinstance(exc, ProviderRetryable):
        log.warning("chat provider %s failed: %s", name, exc.message)
        return ProviderAnswer(
            502,
            f"the {name} provider could not be reached or broke off ({exc.message}); try again",
            error_type="server_error",
            code="provider_unreachable",
        )
    if exc.status == 401:  # ftq's own key was refused: the caller's key is not at fault
        log.warning("chat provider %s refused ftq's credentials", name)
        return ProviderAnswer(
            502,
            f"the {name} provider refused this server's credentials; tell its operator",
            error_type="server_error",
            code="provider_auth_failed",
        )
    status = exc.status or (404 if exc.code == "model_not_found" else 400)
    detail = _openai_error(exc)
    return ProviderAnswer(
        status,
        exc.message,
        error_type=str(detail.get("type") or _type_of(status)),
        code=exc.code,
        param=detail.get("param") if isinstance(detail.get("param"), str) else None,
        headers=_retry_headers(exc),
    )


def _openai_error(exc: ProviderError) -> dict[str, Any]:
    """The provider's OpenAI error object, kept by the SDK error the provider error came from."""
    body = getattr(exc.__cause__, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    return body if isinstance(body, dict) else {}


def _type_of(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def _retry_headers(exc: ProviderError) -> dict[str, str]:
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None:
        return {}
    return {
        "retry-after": str(math.ceil(retry_after)),
        "retry-after-ms": str(round(retry_after * 1000)),
    }
