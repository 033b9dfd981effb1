"""Eval API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftq.shared.jobs.schemas import EvalResult

EvalStatus = Literal["queued", "running", "completed", "failed"]
TERMINAL_STATUSES = frozenset({"completed", "failed"})
MAX_MODELS = 5
# A job's eval takes the graders that need no configuration; a POST /v1/evals takes them all.
EvalGraderName = Literal[
    "exact", "choice", "contains", "bleu", "rouge_l", "regex", "json_schema", "judge"
]


class JudgeConfig(BaseModel):
    """The `judge` grader: which model grades, following which rubric, how hot."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(
        default=None, min_length=1, max_length=40, description="null: the eval's provider"
    )
    model: str = Field(min_length=1, max_length=300)
    rubric: str = Field(min_length=1, max_length=4000)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)


class EvalCreate(BaseModel):
    """Score 1-5 models on a dataset with one grader."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=40)
    models: list[str] = Field(min_length=1, max_length=MAX_MODELS)
    grader: EvalGraderName
    pattern: str | None = Field(
        default=None, description="grader regex: the answer must contain a match (re.search)"
    )
    json_schema: dict[str, Any] | None = Field(
        default=None, description="grader json_schema: the answer must parse and validate"
    )
    judge: JudgeConfig | None = Field(
        default=None, description="grader judge: the model that grades each answer"
    )
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


class EvalError(BaseModel):
    """Why an eval failed."""

    code: str
    message: str | None


class Eval(BaseModel):
    """An eval as the team sees it."""

    object: Literal["eval"] = "eval"
    id: str
    status: EvalStatus
    name: str | None
    dataset: str
    grader: str
    grader_config: dict[str, Any] | None = Field(
        default=None, description="the grader's settings: pattern, schema or judge"
    )
    models: list[str]
    provider: str
    job: str | None
    created_at: datetime
    completed_at: datetime | None
    error: EvalError | None
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
    reason: str | None = None  # the judge's, for grader judge
