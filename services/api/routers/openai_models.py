"""OpenAI's `/v1/models` over ftq (the SDK's `client.models`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["openai-compatible"])
