"""`POST /fine-tunes` of the emulator's Together AI API (a test double): parse, check, resolve.

The body is what the SDK's `create_finetune_request` sends (`FinetuneRequest.model_dump(
exclude_none=True)`); unknown fields are a 400, so a drifting client shows. Defaults follow
Together's: LoRA (rank 8, alpha 16) unless `training_type` says Full or the parent checkpoint was
full, `batch_size: "max"` = the model's maximum, `max_seq_length` = the model's context,
`train_on_inputs: "auto"` = false for conversation/instruction data and true for general text,
DPO beta 0.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftq.services.emulator.errors import OpenAIError
from ftq.services.emulator.together import catalog
from ftq.services.emulator.together.catalog import TogetherModel
from ftq.services.emulator.together.shapes import invalid

AUTO_DPO_BETA = 0.1
Body = TypeVar("Body", bound=BaseModel)


class Strict(BaseModel):
    """Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class LoraType(Strict):
    """`training_type` for LoRA."""

    type: Literal["Lora"]
    lora_r: int = Field(ge=1)
    lora_alpha: int = Field(ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_trainable_modules: str = "all-linear"


class FullType(Strict):
    """`training_type` for full fine-tuning."""

    type: Literal["Full"]


class SftMethod(Strict):
    """`training_method` for supervised fine-tuning."""

    method: Literal["sft"]
    train_on_inputs: bool | Literal["auto"] = "auto"


class DpoMethod(Strict):
    """`training_method` for preference optimisation."""

    method: Literal["dpo"]
    dpo_beta: float | None = Field(None, gt=0.0)
    dpo_normalize_logratios_by_length: bool = False
    dpo_reference_free: bool = False
    rpo_alpha: float | None = Field(None, ge=0.0)
    simpo_gamma: float | None = Field(None, ge=0.0)


class SchedulerArgs(Strict):
    """`lr_scheduler.lr_scheduler_args`."""

    min_lr_ratio: float | None = Field(0.0, ge=0.0, le=1.0)
    num_cycles: float | None = Field(None, gt=0.0)


class Scheduler(Strict):
    """`lr_scheduler`."""

    lr_scheduler_type: Literal["linear", "cosine"]
    lr_scheduler_args: SchedulerArgs | None = None


class CreateBody(Strict):
    """The create request as sent."""

    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    model: str | None = None
    packing: bool = True
    max_seq_length: int | None = None
    n_epochs: int = 1
    n_checkpoints: int = 1
    n_evals: int = 0
    batch_size: int | Literal["max"] = "max"
    gradient_accumulation_steps: int | None = Field(None, ge=0)
    learning_rate: float = 1e-5
    lr_scheduler: Scheduler | None = None
    warmup_ratio: float = Field(0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(1.0, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    suffix: str | None = Field(None, max_length=40)
    wandb_key: str | None = None
    wandb_api_key: str | None = None
    wandb_base_url: str | None = None
    wandb_project_name: str | None = None
    wandb_name: str | None = None
    wandb_entity: str | None = None
    random_seed: int | None = None
    early_stopping_enabled: bool | None = None
    early_stopping_patience: int | None = Field(None, ge=1)
    early_stopping_min_delta: float | None = Field(None, ge=0.0)
    early_stopping_warmup_evals: int | None = Field(None, ge=0)
    train_on_inputs: bool | Literal["auto"] | None = None
    training_type: LoraType | FullType | None = None
    training_method: SftMethod | DpoMethod = Field(default_factory=lambda: SftMethod(method="sft"))
    from_checkpoint: str | None = None
    multimodal_params: dict[str, Any] | None = None
    from_hf_model: str | None = None
    hf_model_revision: str | None = None
    hf_api_token: str | None = None
    hf_output_repo_name: str | None = None


class EstimateBody(BaseModel):
    """`POST /fine-tunes/estimate-price` as sent (other fields are ignored)."""

    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    model: str | None = None
    from_checkpoint: str | None = None
    n_epochs: int = Field(1, ge=1)
    n_evals: int = Field(0, ge=0)
    # Priced by kind only: the SDK sends e.g. `dpo_beta: 0` here, which a create would refuse.
    training_method: dict[str, Any] = Field(default_factory=lambda: {"method": "sft"})
    training_type: dict[str, Any] | None = None

    @property
    def method(self) -> str:
        """ "sft" or "dpo"."""
        return "dpo" if self.training_method.get("method") == "dpo" else "sft"

    @property
    def lora(self) -> bool:
        """Whether LoRA is priced (the default)."""
        return (self.training_type or {}).get("type") != "Full"


@dataclass(frozen=True)
class TogetherRequest:
    """A checked create request with every default resolved (what the job runs with)."""

    model: TogetherModel
    training_file: str
    validation_file: str | None
    method: str
    lora: bool
    n_epochs: int
    n_checkpoints: int
    n_evals: int
    batch_size: int
    n_examples: int
    tokens: int
    file_bytes: int
    suffix: str | None
    random_seed: int | None
    wandb: bool
    shown: dict[str, Any]

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch."""
        return max(1, math.ceil(self.n_examples / self.batch_size))

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole job."""
        return self.n_epochs * self.steps_per_epoch


@dataclass(frozen=True)
class Inputs:
    """What resolving needs besides the body: the base model, the parent, the data."""

    model: TogetherModel
    parent: TogetherRequest | None
    training_format: str
    validation_format: str | None
    n_examples: int
    tokens: int
    file_bytes: int


def parse(kind: type[Body], body: Any) -> Body:
    """The body as a `kind`, or a 400 naming the first bad field."""
    try:
        return kind.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first.get("loc", ())) or None
        if first.get("type") == "extra_forbidden":
            raise invalid(f"Unrecognized request argument supplied: {param}", param) from None
        message = f"Invalid '{param}': {first.get('msg', 'invalid value')}."
        raise invalid(message, param, "invalid_value") from None


def resolve(body: CreateBody, inputs: Inputs) -> TogetherRequest:
    """Check the request against the model's limits and the data; fill in the defaults."""
    method = body.training_method.method
    lora, training_type = _training_type(body, inputs)
    _check_counts(body, inputs.validation_format is not None)
    batch_size = _batch_size(body, inputs.model, method, lora)
    _check_formats(method, inputs.training_format, inputs.validation_format)
    training_method = _training_method(body, inputs.training_format)
    shown = {
        **_shown_settings(body, inputs, training_type),
        "batch_size": batch_size,
        "training_method": training_method,
        "max_seq_length": _max_seq_length(body, inputs.model, method),
    }
    if method == "sft":
        shown["train_on_inputs"] = training_method["train_on_inputs"]
    return TogetherRequest(
        model=inputs.model,
        training_file=body.training_file,
        validation_file=body.validation_file or None,
        method=method,
        lora=lora,
        n_epochs=body.n_epochs,
        n_checkpoints=body.n_checkpoints,
        n_evals=body.n_evals,
        batch_size=batch_size,
        n_examples=inputs.n_examples,
        tokens=inputs.tokens,
        file_bytes=inputs.file_bytes,
        suffix=body.suffix or None,
        random_seed=body.random_seed,
        wandb=bool(body.wandb_key or body.wandb_api_key),
        shown=shown,
    )


def _training_type(body: CreateBody, inputs: Inputs) -> tuple[bool, dict[str, Any]]:
    """(LoRA?, the `training_type` shown): as asked, else the parent's, else default LoRA."""
    asked = body.training_type
    if asked is None and inputs.parent is not None:
        return inputs.parent.lora, dict(inputs.parent.shown["training_type"])
    if isinstance(asked, FullType):
        if inputs.model.full is None:
            raise invalid(
                f"Full training is not supported for the selected model ({inputs.model.name}).",
                "training_type",
            )
        return False, {"type": "Full"}
    lora = asked or LoraType(
        type="Lora", lora_r=catalog.DEFAULT_RANK, lora_alpha=2 * catalog.DEFAULT_RANK
    )
    if lora.lora_r > catalog.MAX_RANK:
        raise invalid(
            f"LoRA rank {lora.lora_r} exceeds the maximum of {catalog.MAX_RANK}.",
            "training_type.lora_r",
        )
    return True, lora.model_dump()


def _check_counts(body: CreateBody, has_validation: bool) -> None:
    """Epochs, checkpoints, evaluations and the learning rate within the model's limits."""
    bounds = (
        ("n_epochs", body.n_epochs, 1, catalog.MAX_EPOCHS),
        ("n_checkpoints", body.n_checkpoints, 1, catalog.MAX_CHECKPOINTS),
        ("n_evals", body.n_evals, 0, catalog.MAX_EVALS),
    )
    for name, value, low, high in bounds:
        if not low <= value <= high:
            raise invalid(f"{name} must be between {low} and {high} (got {value}).", name)
    if not catalog.MIN_LEARNING_RATE <= body.learning_rate <= catalog.MAX_LEARNING_RATE:
        raise invalid(
            f"learning_rate must be between {catalog.MIN_LEARNING_RATE} and "
            f"{catalog.MAX_LEARNING_RATE} (got {body.learning_rate}).",
            "learning_rate",
        )
    if body.n_evals and not has_validation:
        raise invalid("n_evals > 0 requires a validation_file.", "n_evals")
    _check_early_stopping(body, has_validation)


def _check_early_stopping(body: CreateBody, has_validation: bool) -> None:
    """Early stopping needs a validation file and enough evaluations (as the SDK checks)."""
    if not body.early_stopping_enabled:
        return
    if not has_validation:
        raise invalid("Early stopping requires a validation file.", "early_stopping_enabled")
    patience = body.early_stopping_patience or 2
    warmup = 1 if body.early_stopping_warmup_evals is None else body.early_stopping_warmup_evals
    if body.n_evals < patience + warmup + 1:
        raise invalid(
            f"Early stopping requires n_evals >= {patience + warmup + 1} (got {body.n_evals}).",
            "n_evals",
        )


def _batch_size(body: CreateBody, model: TogetherModel, method: str, lora: bool) -> int:
    """The batch size the job runs with ("max" = the model's maximum for this method)."""
    limits = model.batches(lora)
    assert limits is not None  # _training_type refused full training without limits
    maximum = limits.maximum(method)
    if body.batch_size == "max":
        return maximum
    if not limits.minimum <= body.batch_size <= maximum:
        raise invalid(
            f"batch_size must be between {limits.minimum} and {maximum} for {method} "
            f"{'LoRA' if lora else 'full'} training of {model.name} (got {body.batch_size}).",
            "batch_size",
        )
    return body.batch_size


def _max_seq_length(body: CreateBody, model: TogetherModel, method: str) -> int:
    """The sequence length (default: the model's context for this method)."""
    context = model.ctx_dpo if method == "dpo" else model.ctx_sft
    if body.max_seq_length is None:
        return context
    if not catalog.MIN_MAX_SEQ_LENGTH <= body.max_seq_length <= context:
        raise invalid(
            f"max_seq_length must be between {catalog.MIN_MAX_SEQ_LENGTH} and {context} "
            f"(got {body.max_seq_length}).",
            "max_seq_length",
        )
    return body.max_seq_length


def _check_formats(method: str, training: str, validation: str | None) -> None:
    """DPO trains on preference data, SFT on anything else; validation data alike."""
    for param, found in (("training_file", training), ("validation_file", validation)):
        if found is None:
            continue
        if (found == "PREFERENCE") != (method == "dpo"):
            wanted = "preference" if method == "dpo" else "conversation, instruction or general"
            raise invalid(
                f"The {param} is in {found.lower()} format, but {method} training needs "
                f"{wanted} data.",
                param,
                "invalid_file_format",
            )


def _training_method(body: CreateBody, training_format: str) -> dict[str, Any]:
    """`training_method` as the job shows it, "auto" and unset values resolved."""
    asked = body.training_method
    if isinstance(asked, DpoMethod):
        return {
            **asked.model_dump(),
            "dpo_beta": asked.dpo_beta or AUTO_DPO_BETA,
            "rpo_alpha": asked.rpo_alpha or 0.0,
            "simpo_gamma": asked.simpo_gamma or 0.0,
        }
    chosen = body.train_on_inputs if body.train_on_inputs is not None else asked.train_on_inputs
    if chosen == "auto":
        chosen = training_format == "GENERAL"
    return {"method": "sft", "train_on_inputs": chosen}


def _scheduler(body: CreateBody) -> dict[str, Any]:
    """`lr_scheduler` with its arguments filled in (default: linear down to 0)."""
    asked = body.lr_scheduler or Scheduler(lr_scheduler_type="linear")
    args = asked.lr_scheduler_args or SchedulerArgs()
    shown: dict[str, Any] = {"min_lr_ratio": args.min_lr_ratio or 0.0}
    if asked.lr_scheduler_type == "cosine":
        shown["num_cycles"] = args.num_cycles or 0.5
    return {"lr_scheduler_type": asked.lr_scheduler_type, "lr_scheduler_args": shown}


def _shown_settings(
    body: CreateBody, inputs: Inputs, training_type: dict[str, Any]
) -> dict[str, Any]:
    """The request fields a job echoes (never the W&B or Hugging Face tokens)."""
    shown: dict[str, Any] = {
        "training_type": training_type,
        "lr_scheduler": _scheduler(body),
        "learning_rate": body.learning_rate,
        "warmup_ratio": body.warmup_ratio,
        "max_grad_norm": body.max_grad_norm,
        "weight_decay": body.weight_decay,
        "packing": body.packing,
        "random_seed": body.random_seed,
        "gradient_accumulation_steps": body.gradient_accumulation_steps or 1,
        "wandb_project_name": body.wandb_project_name or "",
        "wandb_name": body.wandb_name or "",
        "wandb_entity": body.wandb_entity or "",
        "wandb_base_url": body.wandb_base_url or "",
        "from_checkpoint": body.from_checkpoint or "",
        "from_hf_model": body.from_hf_model or "",
        "hf_model_revision": body.hf_model_revision or "",
        "hf_output_repo_name": body.hf_output_repo_name or "",
        "early_stopping_enabled": bool(body.early_stopping_enabled),
    }
    if body.multimodal_params is not None:
        shown["multimodal_params"] = dict(body.multimodal_params)
    return shown


def check_model_choice(body: CreateBody) -> None:
    """Exactly one of `model` and `from_checkpoint`; Hugging Face weights need a `model`."""
    if body.model and body.from_checkpoint:
        raise invalid(
            "You must specify either a model or a checkpoint to start a job from, not both",
            "from_checkpoint",
        )
    if not body.model and not body.from_checkpoint:
        raise OpenAIError(400, "Missing required parameter: 'model'.", param="model")
    if body.from_hf_model and not body.model:
        raise invalid("from_hf_model needs the base model in `model`.", "model")
