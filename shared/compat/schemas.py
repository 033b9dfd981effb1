"""OpenAI's request bodies, as its API takes them (unknown keys refused like OpenAI does)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftq.shared.jobs.schemas import Auto


class OpenAIHyperparameters(BaseModel):
    """`"auto"` or a number each; checked by ftq's own job schema once mapped."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Auto | int | None = None
    batch_size: Auto | int | None = None
    learning_rate_multiplier: Auto | float | None = None
    beta: Auto | float | None = None
    # The local provider's LoRA settings pass through under the method's hyperparameters.
    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    lora_target_modules: list[str] | None = None
    quantization: Literal["4bit", "none"] | None = None
    num_workers: int | None = None
    gpus_per_worker: int | None = None
    fsdp: bool | None = None
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float | None = None
    eval_steps: int | None = None
    packing: bool | None = None
    gradient_checkpointing: bool | None = None
    from_checkpoint: str | None = None


class MethodParameters(BaseModel):
    """`{"hyperparameters": {...}}` of one method."""

    model_config = ConfigDict(extra="forbid")

    hyperparameters: OpenAIHyperparameters = Field(default_factory=OpenAIHyperparameters)


class OpenAIMethod(BaseModel):
    """`{"type": "supervised" | "dpo" | "reinforcement", "<type>": {...}}`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodParameters | None = None
    dpo: MethodParameters | None = None
    reinforcement: dict[str, Any] | None = None


class FineTuningJobCreate(BaseModel):
    """`POST /v1/fine_tuning/jobs`, every field of the real API."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    hyperparameters: OpenAIHyperparameters | None = None
    method: OpenAIMethod | None = None
    suffix: str | None = Field(default=None, min_length=1, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
