"""Chat completions of `local:` models from the serving worker (services/worker/serving.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from ftq.shared.providers.base import ChatResult, ProviderRetryable, classify_status
from ftq.shared.settings import Settings

# What the worker takes of a chat body: the model, the messages and the limits ftq honours.
STREAM_FIELDS = (
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "stream_options",
)


def stream(settings: Settings, body: dict[str, Any]) -> Iterator[bytes]:
    """The serving worker's server-sent events for a `stream: true` body, relayed as they come."""
    assert settings.local_serving_url
    forwarded = {k: body[k] for k in STREAM_FIELDS if k in body}
    url = f"{settings.local_serving_url.rstrip('/')}/v1/chat/completions"
    try:
        with httpx.stream(
            "POST",
            url,
            json={**forwarded, "stream": True},
            headers=_headers(settings),
            timeout=settings.local_serving_timeout_seconds,
        ) as answer:
            if answer.status_code != 200:
                answer.read()
                raise classify_status(answer.status_code, *_error(answer), answer.headers)
            yield from answer.iter_bytes()
    except httpx.HTTPError as exc:
        raise _unreachable(settings, exc) from exc


def complete(
    settings: Settings,
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
) -> ChatResult:
    """Ask the serving worker at FTQ_LOCAL_SERVING_URL; its errors keep their status."""
    assert settings.local_serving_url
    headers = _headers(settings)
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    url = f"{settings.local_serving_url.rstrip('/')}/v1/chat/completions"
    try:
        answer = httpx.post(
            url, json=body, headers=headers, timeout=settings.local_serving_timeout_seconds
        )
    except httpx.HTTPError as exc:
        raise _unreachable(settings, exc) from exc
    if answer.status_code != 200:
        raise classify_status(answer.status_code, *_error(answer), answer.headers)
    data = answer.json()
    usage = data.get("usage") or {}
    return ChatResult(
        text=data["choices"][0]["message"]["content"] or "",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def _headers(settings: Settings) -> dict[str, str]:
    token = settings.local_serving_token
    return {"authorization": f"Bearer {token.get_secret_value()}"} if token else {}


def _unreachable(settings: Settings, exc: Exception) -> ProviderRetryable:
    return ProviderRetryable(
        f"the serving worker at {settings.local_serving_url} did not answer ({type(exc).__name__})",
        code="serving_unavailable",
        status=503,
    )


def _error(answer: httpx.Response) -> tuple[str, str | None]:
    """The message and code of the serving worker's error answer."""
    try:
        error = answer.json().get("error") or {}
        detail = answer.json().get("detail")
    except ValueError:
        error, detail = {}, None
    if answer.status_code == 401:
        return "the serving worker refused ftq's serving token (FTQ_LOCAL_SERVING_TOKEN)", None
    message = error.get("message") or detail or f"serving worker answered {answer.status_code}"
    return str(message), error.get("code")
