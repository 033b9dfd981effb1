"""`GET /v1/fine_tuning/model_limits` of the emulator: what this account may still fine-tune.

OpenAI documents no such route; ftq reads it where an account exposes it (OpenAI's refusals of
new jobs to some organisations before the 2027-01-06 wind-down are per account, which the
catalog cannot know). The emulator serves one entry per fine-tunable snapshot; an account closed
with `POST /_emulator/account` answers `new_jobs: false` from that date, and refuses creates.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ftq.services.emulator import catalog
from ftq.services.emulator.store import EmulatorState

PATH = "/v1/fine_tuning/model_limits"
JOBS_CLOSE = "2027-01-06"  # OpenAI takes no new fine-tuning jobs from this day


def limits_router(state: EmulatorState) -> APIRouter:
    """The account's fine-tuning limits per model."""
    router = APIRouter()

    @router.get(PATH)
    def model_limits() -> dict[str, Any]:
        """One `fine_tuning.model_limit` per fine-tunable snapshot."""
        closed = state.account_closed_since
        data = [
            {
                "object": "fine_tuning.model_limit",
                "model": model,
                "new_jobs": closed is None,
                "new_jobs_until": closed or JOBS_CLOSE,
            }
            for model in sorted(catalog.FINE_TUNABLE)
        ]
        return {"object": "list", "data": data, "has_more": False}

    return router
