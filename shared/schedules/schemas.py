"""Eval schedule API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftq.shared.evals.schemas import EvalGraderName, JudgeConfig

ScheduleStatus = Literal["active", "paused"]
RunStatus = Literal["running", "completed", "failed"]


class EvalScheduleCreate(BaseModel):
    """Score one model on a dataset with one grader at every slot of a cron expression."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=300)
    dataset: str = Field(min_length=1, max_length=40)
    grader: EvalGraderName
    pattern: str | None = Field(default=None, description="grader regex, as POST /v1/evals")
    json_schema: dict[str, Any] | None = Field(
        default=None, description="grader json_schema, as POST /v1/evals"
    )
    judge: JudgeConfig | None = Field(default=None, description="grader judge, as POST /v1/evals")
    provider: str | None = Field(default=None, min_length=1, max_length=40)
    max_items: int | None = Field(default=None, ge=1)
    cron: str = Field(
        min_length=1, max_length=120, description="five-field cron expression, e.g. '0 6 * * *'"
    )
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA name")
    baseline: float | None = Field(
        default=None, ge=0.0, le=1.0, description="null: the first run's score becomes it"
    )
    tolerance: float = Field(default=0.05, ge=0.0, le=1.0)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class LastRun(BaseModel):
    """The latest run of a schedule, for lists and the CLI table."""

    slot: datetime
    eval_id: str | None
    status: RunStatus
    score: float | None
    regressed: bool


class EvalSchedule(BaseModel):
    """A schedule as the team sees it."""

    object: Literal["eval_schedule"] = "eval_schedule"
    id: str
    name: str | None
    model: str
    dataset: str
    grader: str
    grader_config: dict[str, Any] | None
    provider: str | None
    max_items: int | None
    cron: str
    timezone: str
    baseline: float | None = Field(description="null until the first run completes")
    baseline_eval: str | None = Field(description="the eval whose score became the baseline")
    tolerance: float
    status: ScheduleStatus
    next_run_at: datetime
    last_run: LastRun | None
    created_at: datetime
    updated_at: datetime


class EvalScheduleRun(BaseModel):
    """One slot's run: its eval and, once that finished, the score against the baseline."""

    object: Literal["eval_schedule_run"] = "eval_schedule_run"
    id: str
    schedule: str
    slot: datetime
    eval_id: str | None
    status: RunStatus
    score: float | None
    interval: list[float] | None
    baseline: float | None
    regressed: bool
    error: str | None
    created_at: datetime
    settled_at: datetime | None
