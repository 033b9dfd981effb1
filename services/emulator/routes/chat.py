"""`/v1/chat/completions` of the emulator (a test double: deterministic answers, see chat.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ftq.services.emulator.errors import bad_request, invalid_type, missing
from ftq.services.emulator.routes.common import json_body
from ftq.services.emulator.store import EmulatorState

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def chat_router(state: EmulatorState) -> APIRouter:
    """Chat completions for base and `ft:` models."""
    router = APIRouter(prefix="/v1/chat")

    @router.post("/completions")
    async def create_completion(request: Request) -> dict[str, Any]:
        """One deterministic completion."""
        return state.chat(_checked(await json_body(request)))

    return router


def _checked(body: Any) -> dict[str, Any]:
    """`model` and a non-empty `messages` list of turns with known roles; no streaming."""
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
    if body.get("stream"):
        raise bad_request(
            "The emulator does not stream; send stream=false.", "stream", "unsupported_value"
        )
    return body
