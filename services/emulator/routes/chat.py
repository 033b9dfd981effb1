"""`/v1/chat/completions` of the emulator (a test double: deterministic answers, see chat.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ftq.services.emulator import chat
from ftq.services.emulator.errors import bad_request, invalid_type, missing
from ftq.services.emulator.routes.common import json_body
from ftq.services.emulator.store import EmulatorState

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def chat_router(state: EmulatorState) -> APIRouter:
    """Chat completions for base and `ft:` models."""
    router = APIRouter(prefix="/v1/chat")

    @router.post("/completions", response_model=None)
    async def create_completion(request: Request) -> Response:
        """One deterministic completion; with `stream: true`, as server-sent events."""
        body = _checked(await json_body(request))
        completion = state.chat(body)
        if body.get("stream") is not True:
            return JSONResponse(completion)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _events(chat.chunks(completion, include_usage))
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router


def _events(chunks: list[dict[str, Any]]) -> Iterator[bytes]:
    """Each chunk as one `data:` event, then `data: [DONE]`, as OpenAI sends them."""
    for chunk in chunks:
        yield b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _checked(body: Any) -> dict[str, Any]:
    """`model` and a non-empty `messages` list of turns with known roles; `stream` a boolean."""
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    if not isinstance(body.get("model"), str):
        raise (
            missing("model")
            if body.get("model") is None
            else invalid_type("model", "a string", body["model"])
        )
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "Invalid 'messages': expected a non-empty array.", "messages", "invalid_value"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad_request(
                f"Invalid 'messages[{index}].role'.", f"messages[{index}].role", "invalid_value"
            )
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise invalid_type("stream", "a boolean", body["stream"])
    options = body.get("stream_options")
    if options is not None and body.get("stream") is not True:
        raise bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )
    return body
