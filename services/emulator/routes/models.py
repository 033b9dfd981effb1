"""`/v1/models` routes of the emulator (a test double of OpenAI's Models API): delete only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ftq.services.emulator.store import EmulatorState


def models_router(state: EmulatorState) -> APIRouter:
    """Delete a fine-tuned model one of the emulator's jobs made (404 for any other)."""
    router = APIRouter(prefix="/v1/models")

    @router.delete("/{model:path}")
    def delete_model(model: str) -> dict[str, Any]:
        """Delete a fine-tuned model or checkpoint."""
        return state.delete_model(model)

    return router
