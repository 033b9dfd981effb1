"""`/_emulator/*` control routes: faults, reset, stats, speed, job jumps. Never faulted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ..faults import Faults
from ..store import EmulatorState


class SpeedBody(BaseModel):
    """`POST /_emulator/speed`."""

    model_config = ConfigDict(extra="forbid")

    speed: float = Field(gt=0)


class AdvanceBody(BaseModel):
    """`POST /_emulator/jobs/{id}/advance`: emulated seconds, or to the end when omitted."""

    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(None, ge=0)


def admin_router(state: EmulatorState) -> APIRouter:
    """Controls for tests and benchmarks."""
    router = APIRouter(prefix="/_emulator")

    @router.post("/faults")
    def set_faults(faults: Faults) -> dict[str, Any]:
        """Replace the fault switches (omitted ones are off)."""
        return state.set_faults(faults)

    @router.get("/faults")
    def get_faults() -> dict[str, Any]:
        """The current fault switches."""
        return state.faults.model_dump()

    @router.post("/reset")
    def reset() -> dict[str, Any]:
        """Forget everything."""
        state.reset()
        return {"reset": True}

    @router.get("/stats")
    def stats() -> dict[str, Any]:
        """Call counts per route and creation counters."""
        return state.stats()

    @router.post("/speed")
    def set_speed(body: SpeedBody) -> dict[str, Any]:
        """Change the clock speed factor."""
        state.set_speed(body.speed)
        return {"speed": body.speed}

    @router.post("/jobs/{job_id}/advance")
    def advance(job_id: str, body: AdvanceBody | None = None) -> dict[str, Any]:
        """Jump one job forward in emulated time."""
        return state.advance(job_id, body.seconds if body else None)

    return router
