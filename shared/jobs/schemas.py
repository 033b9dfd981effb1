"""Job API shapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ftq.shared.errors import Unprocessable
from ftq.shared.providers.registry import get_plugin, plugins

GraderName = Literal["exact", "choice", "contains", "bleu", "rouge_l"]


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
    checkpoints: bool = Field(
        default=False,
        description="also score every checkpoint the provider kept; the job gets best_checkpoint",
    )
    retention: bool = Field(
        default=False,
        description="also score base and tuned model on ftq's general-skills suite; the job "
        "gets retention (docs/evals.md#retention-checks)",
    )
    retention_dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="a dataset of the team's to check retention on instead of ftq's suite",
    )
    retention_grader: Literal["choice", "exact"] | None = Field(
        default=None, description="the grader of retention_dataset (null: choice)"
    )
    retention_max_items: int | None = Field(
        default=None, ge=1, description="a seeded sample of this many retention items (null: all)"
    )

    @model_validator(mode="after")
    def _retention_grader(self) -> JobEvalRequest:
        if self.retention_grader is not None and self.retention_dataset is None:
            raise ValueError("retention_grader is for a retention_dataset (ftq's suite is choice)")
        return self

    @property
    def wants_retention(self) -> bool:
        """Whether the job asked for a retention check (on ftq's suite or its own)."""
        return self.retention or self.retention_dataset is not None


class EvalResult(BaseModel):
    """One model's standing: items, mean score of the items answered, provider errors."""

    class EvalComparison(BaseModel):
        """This model against the eval's first model, on the items both answered."""

        against: str
        n: int = Field(description="items both models answered")
        improved: int
        regressed: int
        unchanged: int
        improved_items: list[int] = Field(description="item indices, at most 20")
        regressed_items: list[int] = Field(description="item indices, at most 20")
        difference: float | None = Field(description="mean of this score minus the first's")
        interval: tuple[float, float] | None = Field(
            description="paired bootstrap 95% interval of the difference"
        )
        significant: bool = Field(description="the interval excludes 0")

    model: str
    n: int
    score: float | None
    errors: int
    completed: int
    interval: tuple[float, float] | None = Field(
        default=None, description="bootstrap 95% interval of the mean score"
    )
    comparison: EvalResult.EvalComparison | None = None


class JobEval(BaseModel):
    """The eval a job asked for: `pending` until the job succeeds, `skipped` if it did not."""

    id: str | None
    status: Literal["pending", "skipped", "queued", "running", "completed", "failed"]
    grader: str
    dataset: str | None
    results: list[EvalResult]


JobStatus = Literal[
    "queued", "uploading", "submitted", "running", "succeeded", "failed", "cancelled"
]
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE_STATUSES = frozenset({"queued", "uploading", "submitted", "running"})
# Jobs holding one of the provider's slots (the scheduler's capacity counts these).
SLOT_STATUSES = frozenset({"uploading", "submitted", "running"})

Auto = Literal["auto"]
LOCAL_PROVIDER = "local"


class Hyperparameters(BaseModel):
    """Each value a number or "auto", as OpenAI takes them."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Auto | int = Field(default="auto")
    batch_size: Auto | int = Field(default="auto")
    learning_rate_multiplier: Auto | float = Field(default="auto")
    beta: Auto | float | None = None
    # LoRA settings of the `local` provider (None: the server's FTQ_LOCAL_LORA_* defaults).
    lora_rank: int | None = Field(default=None, ge=1, le=1024)
    lora_alpha: int | None = Field(default=None, ge=1, le=4096)
    lora_dropout: float | None = Field(default=None, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | None = Field(default=None, min_length=1, max_length=64)
    # Local QLoRA (NF4, bf16 compute) or plain LoRA; None: the FTQ_LOCAL_QUANTIZE_4BIT default.
    quantization: Literal["4bit", "none"] | None = None
    # Local training on Ray (FTQ_LOCAL_BACKEND=ray): Ray Train workers, GPUs each, FSDP over DDP.
    num_workers: int | None = Field(default=None, ge=1, le=1024)
    gpus_per_worker: int | None = Field(default=None, ge=0, le=64)
    fsdp: bool | None = None
    # Local training options (docs/local-training.md#training-options); `packing` and
    # `from_checkpoint` below serve the local provider too.
    early_stopping_patience: int | None = Field(default=None, ge=1, le=1000)
    early_stopping_min_delta: float | None = Field(default=None, ge=0.0)
    eval_steps: int | None = Field(default=None, ge=1)
    gradient_checkpointing: bool | None = None
    # Together's own options (None: Together's default); the LoRA ones above apply there too.
    n_checkpoints: int | None = Field(default=None, ge=1, le=100)
    n_evals: int | None = Field(default=None, ge=0, le=100)
    learning_rate: float | None = Field(default=None, gt=0.0, lt=1.0)
    warmup_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    max_grad_norm: float | None = Field(default=None, ge=0.0)
    weight_decay: float | None = Field(default=None, ge=0.0)
    lora: bool | None = Field(default=None, description="false: full fine-tuning at Together")
    train_on_inputs: bool | Auto | None = None
    from_checkpoint: str | None = Field(default=None, min_length=1, max_length=300)
    lr_scheduler_type: Literal["linear", "cosine"] | None = None
    min_lr_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    scheduler_num_cycles: float | None = Field(default=None, gt=0.0)
    packing: bool | None = None
    max_seq_length: int | None = Field(default=None, ge=1)
    gradient_accumulation_steps: int | None = Field(default=None, ge=1, le=1024)
    rpo_alpha: float | None = Field(default=None, ge=0.0)
    simpo_gamma: float | None = Field(default=None, ge=0.0)
    dpo_normalize_logratios_by_length: bool | None = None
    train_vision: bool | None = None

    @model_validator(mode="after")
    def _together_choices(self) -> Hyperparameters:
        if self.learning_rate is not None and self.learning_rate_multiplier != "auto":
            raise ValueError("give learning_rate or learning_rate_multiplier, not both")
        lora = (self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_target_modules)
        if self.lora is False and any(value is not None for value in lora):
            raise ValueError("LoRA settings need lora true or unset, not lora false")
        return self

    @field_validator("n_epochs")
    @classmethod
    def _epochs(cls, value: Auto | int) -> Auto | int:
        if value != "auto" and not 1 <= int(value) <= 50:
            raise ValueError("n_epochs must be between 1 and 50 or 'auto'")
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, value: Auto | int) -> Auto | int:
        if value != "auto" and not 1 <= int(value) <= 256:
            raise ValueError("batch_size must be between 1 and 256 or 'auto'")
        return value

    @field_validator("learning_rate_multiplier")
    @classmethod
    def _lr(cls, value: Auto | float) -> Auto | float:
        if value != "auto" and float(value) <= 0:
            raise ValueError("learning_rate_multiplier must be greater than 0 or 'auto'")
        return value


class Method(BaseModel):
    """Supervised fine-tuning or DPO, with hyperparameters."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo"] = "supervised"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)

    def to_provider(self, provider: str) -> dict[str, Any]:
        """The provider's `method` body: OpenAI's shape, with only the settings it takes."""
        takes = get_plugin(provider).capabilities.takes
        params = self.hyperparameters.model_dump(exclude_none=True)
        if self.type != "dpo":
            params.pop("beta", None)
        params = {name: value for name, value in params.items() if takes(name)}
        return {"type": self.type, self.type: {"hyperparameters": params}}


class JobCreate(BaseModel):
    """A fine-tuning request."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    training_dataset: str = Field(min_length=1)
    validation_dataset: str | None = None
    validation_split: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="cut this share of the training dataset into a validation dataset (seeded)",
    )
    provider: str | None = Field(default=None, min_length=1, max_length=40)
    method: Method = Field(default_factory=Method)
    hyperparameters: Hyperparameters | None = Field(
        default=None,
        description="the supervised method's hyperparameters at the top level, as OpenAI's "
        "legacy field (merged into method; a value given in both places must agree)",
    )
    suffix: str | None = Field(default=None, min_length=1, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2147483647)
    metadata: dict[str, str] = Field(default_factory=dict)
    webhook_url: str | None = Field(default=None, max_length=2000)
    eval: JobEvalRequest | None = Field(
        default=None, description="score the base and the fine-tuned model once it succeeds"
    )
    fallback_providers: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="providers to move to, in order, when `provider` is closed to new jobs "
        "(403, provider_unavailable) or does not offer the model",
    )
    model_map: dict[str, str] = Field(
        default_factory=dict,
        description="the model to train at each fallback provider (default: the same name "
        "where that provider tunes it, else the catalog's equivalent)",
    )

    @model_validator(mode="after")
    def _fallbacks(self) -> JobCreate:
        if len(set(self.fallback_providers)) != len(self.fallback_providers):
            raise ValueError("fallback_providers lists a provider twice")
        unknown = set(self.model_map) - set(self.fallback_providers)
        if unknown:
            raise ValueError(f"model_map names {sorted(unknown)}, not in fallback_providers")
        return self

    @model_validator(mode="after")
    def _one_validation_source(self) -> JobCreate:
        if self.validation_split is not None and self.validation_dataset is not None:
            raise ValueError("give validation_dataset or validation_split, not both")
        return self

    @model_validator(mode="after")
    def _legacy_hyperparameters(self) -> JobCreate:
        if self.hyperparameters is None:
            return self
        if self.method.type != "supervised":
            raise ValueError("top-level hyperparameters are the supervised method's")
        given = self.method.hyperparameters.model_dump(exclude_unset=True)
        for name, value in self.hyperparameters.model_dump(exclude_unset=True).items():
            if name in given and given[name] != value:
                raise ValueError(f"hyperparameters.{name} and method.hyperparameters.{name} differ")
            setattr(self.method.hyperparameters, name, value)
        self.hyperparameters = None
        return self

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 15:
            raise ValueError("metadata holds at most 15 pairs (ftq uses the 16th)")
        for key, item in value.items():
            if len(key) > 64 or len(item) > 512:
                raise ValueError(f"metadata key {key!r}: keys <= 64, values <= 512 characters")
        return value


def check_provider_settings(data: JobCreate, provider: str) -> None:
    """Refuse (422 naming the field) a hyperparameter the provider or a fallback does not take."""
    _check_takes(data, provider, "")
    for index, fallback in enumerate(data.fallback_providers):
        if fallback == provider:
            raise Unprocessable(
                f"{fallback!r} is the job's own provider", param=f"fallback_providers[{index}]"
            )
        if fallback not in plugins():
            raise Unprocessable(
                f"unknown provider {fallback!r}; choose among {', '.join(plugins())}",
                param=f"fallback_providers[{index}]",
            )
        _check_takes(data, fallback, "fallback provider ")


def _check_takes(data: JobCreate, provider: str, role: str) -> None:
    plugin = get_plugin(provider)
    check_job = getattr(plugin, "check_job", None)
    if check_job is not None:
        check_job(data.model_map.get(provider, data.model), data.method.model_dump(mode="json"))
    for name in data.method.hyperparameters.model_dump(exclude_none=True):
        if plugin.capabilities.takes(name):
            continue
        takers = [other for other, p in plugins().items() if p.capabilities.takes(name)]
        where = f"of {', '.join(takers)} only" if takers else "taken by no provider here"
        raise Unprocessable(
            f"{name} is a setting {where}, not of {role}{provider!r}",
            param=f"method.hyperparameters.{name}",
        )


class JobRetry(BaseModel):
    """`POST /v1/jobs/{id}/retry`: the same data, model and provider with other settings."""

    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters | None = Field(
        default=None,
        description="the settings to change (the others are the job's); null: the "
        "diagnosis's suggestion",
    )


class JobError(BaseModel):
    """Why a job failed."""

    code: str
    message: str | None


class ResultFile(BaseModel):
    """The provider's result file (metrics CSV), kept by ftq when the job succeeded."""

    provider_file_id: str
    bytes: int | None
    url: str


class Job(BaseModel):
    """A job as the team sees it."""

    object: Literal["job"] = "job"
    id: str
    status: JobStatus
    queue_position: int | None = None
    model: str
    provider: str
    fallback_providers: list[str] = Field(default_factory=list)
    model_map: dict[str, str] = Field(default_factory=dict)
    credential_id: str | None = Field(
        default=None, description="the team's provider credential the job runs with (None: ftq's)"
    )
    training_dataset: str
    validation_dataset: str | None
    validation_split: float | None = None
    method: dict[str, Any]
    suffix: str | None
    seed: int | None
    metadata: dict[str, Any]
    webhook_url: str | None
    provider_job_id: str | None
    provider_status: str | None
    fine_tuned_model: str | None
    trained_tokens: int | None
    result_file: ResultFile | None = None
    estimated_cost_usd: Decimal | None
    error: JobError | None
    eval: JobEval | None = None
    diagnosis: dict[str, Any] | None = Field(
        default=None,
        description="training diagnosis of the metrics so far (final once the job finished): "
        "findings with kind, evidence, suggestion, message (docs/diagnosis.md)",
    )
    best_checkpoint: dict[str, Any] | None = Field(
        default=None,
        description="with eval.checkpoints, once its eval completed: the best scoring of the "
        "checkpoints and final model: {model, step, score} (ties: the earlier step)",
    )
    retention: dict[str, Any] | None = Field(
        default=None,
        description="with eval.retention: {status, eval_id, suite} once queued; when its eval "
        "completed also base_score, tuned_score, delta, interval, items, warning",
    )
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


# OpenAI's event levels; ftq's own events use the same three.
EventLevel = Literal["info", "warn", "error"]


class JobEvent(BaseModel):
    """One line of a job's timeline."""

    model_config = ConfigDict(from_attributes=True)

    object: Literal["job.event"] = "job.event"
    id: int
    source: str
    level: str
    type: str
    message: str
    data: dict[str, Any] | None
    created_at: datetime


class MetricPoint(BaseModel):
    """Training metrics at one step, as the provider reported them."""

    object: Literal["job.metric"] = "job.metric"
    step: int
    total_steps: int | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class Checkpoint(BaseModel):
    """A model snapshot the provider kept at a step, usable as a model name."""

    object: Literal["job.checkpoint"] = "job.checkpoint"
    id: str
    step_number: int
    fine_tuned_model_checkpoint: str
    metrics: dict[str, Any]
    created_at: datetime | None
