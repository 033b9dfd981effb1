"""The serving worker: `local:` models (and their checkpoints) answer chat completions here.

Runs where the GPUs are (`python -m ftq.services.worker.serving`, k8s `serving`), so the API,
whose image has no torch, hands `local:` completions over HTTP (FTQ_LOCAL_SERVING_URL). The
backend is the one `inference` picks: vLLM with LoRA adapters on GPU, transformers on CPU. The
answers are OpenAI's `chat.completion` shape; the bearer is FTQ_LOCAL_SERVING_TOKEN.
"""

from __future__ import annotations

import hmac
import secrets
import time
from itertools import chain
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, SecretStr

from ftq.shared.providers.base import ProviderError, piece_events, sampling
from ftq.shared.settings import get_settings


class CompletionRequest(BaseModel):
    """What the API forwards: the model, the messages and the sampling settings ftq honours."""

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


def _error(exc: ProviderError) -> JSONResponse:
    error = {"message": exc.message, "code": exc.code, "type": "invalid_request_error"}
    return JSONResponse({"error": error}, status_code=exc.status or 400)


def _stream(body: CompletionRequest) -> Any:
    """Server-sent events as the reply is generated; a bad model is an error answer, not a
    stream (the first event is produced before the response starts)."""
    from ftq.shared.providers.local import inference

    try:
        pieces = inference.stream(body.model, body.messages, **sampling(body.model_dump()))
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        events = piece_events(body.model, pieces, include_usage=include_usage)
        first = next(events)
    except ProviderError as exc:
        return _error(exc)
    return StreamingResponse(
        chain([first], events),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )


def token_guard(secret: SecretStr | None) -> Any:
    """A dependency checking the shared bearer in constant time (none configured: open)."""

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if secret is None:
            return
        given = (authorization or "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, secret.get_secret_value().encode()):
            raise HTTPException(401, "a valid serving token is required")

    return require_token


def create_app() -> FastAPI:
    """The serving worker's app (its token read once, from FTQ_LOCAL_SERVING_TOKEN)."""
    app = FastAPI(title="ftq serving worker", docs_url=None, redoc_url=None)
    guard = token_guard(get_settings().local_serving_token)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions", dependencies=[Depends(guard)])
    def complete(body: CompletionRequest) -> Any:
        from ftq.shared.providers.local import inference

        if body.stream:
            return _stream(body)
        try:
            result = inference.complete(body.model, body.messages, **sampling(body.model_dump()))
        except ProviderError as exc:
            return _error(exc)
        return {
            "id": f"chatcmpl-{secrets.token_urlsafe(18)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
            "system_fingerprint": None,
        }

    return app


def main() -> None:
    """Serve on FTQ_LOCAL_SERVING_PORT, all interfaces (the pod's network policy limits callers)."""
    import uvicorn

    uvicorn.run(create_app(), host="0.0.0.0", port=get_settings().local_serving_port)


if __name__ == "__main__":
    main()
