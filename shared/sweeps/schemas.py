"""Sweep API shapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftq.shared.jobs.schemas import JobCreate, JobEvalRequest

MAX_TRIALS = 12
SweepStatus = Literal["running", "completed", "failed", "cancelled"]


class SearchSpace(BaseModel):
    """The values each hyperparameter may take (an unlisted one keeps the base's value)."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: list[int] | None = Field(default=None, min_length=1, max_length=12)
    learning_rate_multiplier: list[float] | None = Field(default=None, min_length=1, max_length=12)
    batch_size: list[int] | None = Field(default=None, min_length=1, max_length=12)
    lora_rank: list[int] | None = Field(default=None, min_length=1, max_length=12)


class Search(BaseModel):
    """Every combination (grid) or `n_trials` seeded draws from the combinations (random)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["grid", "random"] = "grid"
    n_trials: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0)
    space: SearchSpace


class EarlyStopping(BaseModel):
    """Stop a trial whose validation loss exceeds the best trial's at the same step by `margin`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    margin: float = Field(default=0.25, gt=0)
    min_evaluations: int = Field(default=3, ge=1)


class SweepCreate(BaseModel):
    """A base job request, the search over its hyperparameters and the eval that scores trials."""

    model_config = ConfigDict(extra="forbid")

    base: JobCreate
    search: Search
    eval: JobEvalRequest
    objective: Literal["score"] = "score"
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)


class Trial(BaseModel):
    """One trial: an ordinary job with its own hyperparameters."""

    job_id: str
    status: str
    hyperparameters: dict[str, Any]
    score: float | None
    cost_usd: Decimal | None
    stopped_early: bool


class Sweep(BaseModel):
    """A sweep and its trials; `best_job_id` once it has completed."""

    id: str
    object: Literal["sweep"] = "sweep"
    status: SweepStatus
    objective: str
    search: dict[str, Any]
    trials: list[Trial]
    best_job_id: str | None
    estimated_cost_usd: Decimal | None
    created_at: datetime
    completed_at: datetime | None
