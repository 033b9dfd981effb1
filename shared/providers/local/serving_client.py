"""Chat completions of `local:` models from the serving worker (services/worker/serving.py)."""

from __future__ import annotations

from typing import Any

import httpx

from ftq.shared.providers.base import ChatResult, ProviderRetryable, classify_status
from ftq.shared.settings import Settings


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
    token = settings.local_serving_token
    headers = {"authorization": f"Bearer {token.get_secret_value()}"} if token else {}
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
        raise ProviderRetryable(
            f"the serving worker at {settings.local_serving_url} did not answer "
            f"({type(exc).__name__})",
            code="serving_unavailable",
            status=503,
        ) from exc
    if answer.status_code != 200:
        raise classify_status(answer.status_code, *_error(answer), answer.headers)
    data = answer.json()
    usage = data.get("usage") or {}
    return ChatResult(
        text=data["choices"][0]["message"]["content"] or "",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
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
