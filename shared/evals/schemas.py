"""Eval API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.evals.graders import GraderName

EvalStatus = Literal["queued", "running", "completed", "failed"]
TERMINAL_STATUSES = frozenset({"completed", "failed"})
MAX_MODELS = 5


class EvalCreate(BaseModel):
    """Score 1-5 models on a dataset with one grader."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=40)
    models: list[str] = Field(min_length=1, max_length=MAX_MODELS)
    grader: GraderName
    provider: str | None = Field(default=None, min_length=1, max_length=40)
    max_items: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=4, ge=1)
    name: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        if any(not m.strip() or len(m) > 300 for m in value):
            raise ValueError("each model is a name of 1 to 300 characters")
        if len(set(value)) != len(value):
            raise ValueError("models must not repeat")
        return value


class JobEvalRequest(BaseModel):
    """An eval of the base and the fine-tuned model, run once the job succeeds."""

    model_config = ConfigDict(extra="forbid")

    grader: GraderName = "exact"
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="null: the job's validation dataset (or validation split)",
    )
    max_items: int | None = Field(default=None, ge=1)


class EvalError(BaseModel):
    """Why an eval failed."""

    code: str
    message: str | None


class EvalResult(BaseModel):
    """One model's standing: items, mean score of the items answered, provider errors."""

    model: str
    n: int
    score: float | None
    errors: int
    completed: int


class Eval(BaseModel):
    """An eval as the team sees it."""

    object: Literal["eval"] = "eval"
    id: str
    status: EvalStatus
    name: str | None
    dataset: str
    grader: str
    models: list[str]
    provider: str
    job: str | None
    created_at: datetime
    completed_at: datetime | None
    error: EvalError | None
    results: list[EvalResult]


class JobEval(BaseModel):
    """The eval a job asked for: `pending` until the job succeeds, `skipped` if it did not."""

    id: str | None
    status: Literal["pending", "skipped", "queued", "running", "completed", "failed"]
    grader: str
    dataset: str | None
    results: list[EvalResult]


class EvalItemOut(BaseModel):
    """One line of the items download."""

    index: int
    model: str
    prompt: str
    reference: str | list[str]
    output: str | None
    score: float | None
    error: str | None
