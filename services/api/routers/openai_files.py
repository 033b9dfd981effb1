"""OpenAI's `/v1/files` over ftq (the SDK's `client.files`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["openai-compatible"])
