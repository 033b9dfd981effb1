"""`/_emulator/*` control routes: faults, reset, stats, speed, job jumps, webhooks, request log.

Never faulted, never delayed, never logged.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, Self

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftq.services.emulator.faults import Faults
from ftq.services.emulator.store import EmulatorState
from ftq.services.emulator.telemetry import LOG_SIZE
from ftq.services.emulator.webhooks import WebhookTarget

Milestone = Literal["queued", "running", "succeeded"]


class SpeedBody(BaseModel):
    """`POST /_emulator/speed`."""

    model_config = ConfigDict(extra="forbid")

    speed: float = Field(ge=0)


class AdvanceBody(BaseModel):
    """`POST /_emulator/jobs/{id}/advance`: seconds, a status to reach, or (neither) the end."""

    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(None, ge=0)
    to_status: Milestone | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        """`seconds` and `to_status` exclude each other."""
        if self.seconds is not None and self.to_status is not None:
            raise ValueError("give seconds or to_status, not both")
        return self


class BulkAdvanceBody(AdvanceBody):
    """`POST /_emulator/jobs/advance`: these `job_ids`, or the `count` oldest unfinished jobs."""

    job_ids: list[str] | None = None
    count: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        """Exactly one of `job_ids` and `count`."""
        if (self.job_ids is None) == (self.count is None):
            raise ValueError("give exactly one of job_ids and count")
        return self


class AccountBody(BaseModel):
    """`POST /_emulator/account`: close the account to new jobs from a day, or reopen it."""

    model_config = ConfigDict(extra="forbid")

    closed_since: date | None = None


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

    @router.post("/account")
    def set_account(body: AccountBody) -> dict[str, Any]:
        """Close the account to new jobs (model_limits says so, creates are a 403) or reopen it."""
        closed = body.closed_since.isoformat() if body.closed_since else None
        with state.lock:
            state.account_closed_since = closed
        return {"closed_since": closed}

    @router.post("/jobs/{job_id}/advance")
    def advance(job_id: str, body: AdvanceBody | None = None) -> dict[str, Any]:
        """Jump one job forward in emulated time."""
        body = body or AdvanceBody()
        return state.advance(job_id, body.seconds, body.to_status)

    @router.post("/jobs/advance")
    def advance_many(body: BulkAdvanceBody) -> dict[str, Any]:
        """Jump several jobs forward at once (with speed 0: exactly these jobs change)."""
        return state.advance_many(body.job_ids, body.count, body.seconds, body.to_status)

    @router.post("/webhooks")
    def set_webhooks(target: WebhookTarget) -> dict[str, Any]:
        """Send OpenAI's fine_tuning.job.* webhooks to `url`, signed with `secret`."""
        return state.set_webhooks(target)

    @router.delete("/webhooks")
    def stop_webhooks() -> dict[str, Any]:
        """Stop sending webhooks."""
        return state.set_webhooks(None)

    @router.get("/webhooks")
    def webhooks() -> dict[str, Any]:
        """The webhook URL (never the secret) and every delivery with its attempts."""
        return state.webhooks.snapshot()

    @router.get("/requests")
    def requests(limit: int = Query(100, ge=1, le=LOG_SIZE)) -> dict[str, Any]:
        """The last API requests, newest first: path, query, credential kind, status."""
        return state.requests(limit)

    return router
