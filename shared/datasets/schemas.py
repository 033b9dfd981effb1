"""Dataset API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DatasetPurpose = Literal["fine-tune", "eval"]
DatasetStatus = Literal["validating", "ready", "invalid"]


class Dataset(BaseModel):
    """A dataset as listed; `report` is filled on the single-object read."""

    model_config = ConfigDict(from_attributes=True)

    object: Literal["dataset"] = "dataset"
    id: str
    name: str
    purpose: DatasetPurpose
    model: str | None
    bytes: int
    sha256: str
    status: DatasetStatus
    n_examples: int | None
    created_at: datetime
    validated_at: datetime | None
    report: dict[str, Any] | None = None


class DatasetConvert(BaseModel):
    """Convert a dataset to another format; today OpenAI evals records to chat examples."""

    model_config = ConfigDict(extra="forbid")

    to: Literal["chat"] = "chat"
    name: str | None = None


class DatasetSplit(BaseModel):
    """Cut a seeded validation split from a training dataset."""

    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(gt=0, lt=1, description="share of examples for validation")
    seed: int = 0


class DatasetSplitResult(BaseModel):
    """The two datasets a split produced."""

    object: Literal["dataset.split"] = "dataset.split"
    train: Dataset
    validation: Dataset


class DatasetCreate(BaseModel):
    """The form fields that accompany an upload."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    purpose: DatasetPurpose = "fine-tune"
    model: str | None = None
