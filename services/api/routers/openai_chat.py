"""OpenAI's `/v1/chat/completions` over ftq (the SDK's `client.chat.completions`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["openai-compatible"])
