"""Hyperparameters of a local run: OpenAI's names and "auto", LoRA's own, the training options
(evaluation, early stopping, packing, gradient checkpointing) and what `from_checkpoint` names."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from ftq.shared.datasets.validation.stats import auto_n_epochs
from ftq.shared.errors import Unprocessable
from ftq.shared.models import LocalRun
from ftq.shared.providers.local import ray_cluster, repository
from ftq.shared.settings import get_settings
from ftq.shared.storage import get_blob_store

MAX_AUTO_BATCH = 256
AUTO_BATCH_SHARE = 0.002  # OpenAI's "auto" batch: about 0.2% of the examples
DEFAULT_BETA = 0.1
PARAM = "method.hyperparameters."
# Options that score the validation set: no validation file, nothing to score.
VALIDATED = ("early_stopping_patience", "eval_steps")
JOB_PREFIX = "ftj_"
CKPT_MARK = ":ckpt-step-"


@dataclass(frozen=True)
class Hyper:
    """Resolved values ("auto" replaced)."""

    n_epochs: int
    batch_size: int
    multiplier: float
    learning_rate: float
    rank: int
    alpha: int
    dropout: float
    targets: list[str]
    beta: float
    patience: int | None = None
    min_delta: float = 0.0
    eval_steps: int | None = None
    packing: bool = False
    # None: on where CUDA trains (memory for compute), off on CPU (nothing to save there).
    gradient_checkpointing: bool | None = None

    def describe(self) -> str:
        """One line for the job's events."""
        stopping = (
            f"early_stopping_patience={self.patience} min_delta={self.min_delta:g}"
            if self.patience
            else "early stopping off"
        )
        return (
            f"Hyperparameters: n_epochs={self.n_epochs}, batch_size={self.batch_size}, "
            f"learning_rate={self.learning_rate:g} (multiplier {self.multiplier:g} x base "
            f"{get_settings().local_base_learning_rate:g}), LoRA rank={self.rank} "
            f"alpha={self.alpha} dropout={self.dropout:g} target_modules={','.join(self.targets)}"
            f", eval_steps={self.eval_steps or 'epoch'}, packing={self.packing}, {stopping}"
        )


def method_params(method: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters inside OpenAI's `method` body."""
    kind = method.get("type", "supervised")
    return dict((method.get(kind) or {}).get("hyperparameters") or {})


def resolve(params: dict[str, Any], n_examples: int) -> Hyper:
    """Replace "auto" as OpenAI does; fill LoRA values from the FTQ_LOCAL_LORA_* settings."""
    settings = get_settings()
    epochs = params.get("n_epochs", "auto")
    batch = params.get("batch_size", "auto")
    multiplier = params.get("learning_rate_multiplier", "auto")
    beta = params.get("beta", "auto")
    auto_batch = max(1, min(MAX_AUTO_BATCH, math.ceil(n_examples * AUTO_BATCH_SHARE)))
    factor = 1.0 if multiplier in (None, "auto") else float(multiplier)
    return Hyper(
        n_epochs=auto_n_epochs(n_examples) if epochs in (None, "auto") else int(epochs),
        batch_size=auto_batch if batch in (None, "auto") else int(batch),
        multiplier=factor,
        learning_rate=settings.local_base_learning_rate * factor,
        rank=int(params.get("lora_rank") or settings.local_lora_rank),
        alpha=int(params.get("lora_alpha") or settings.local_lora_alpha),
        dropout=float(
            params["lora_dropout"]
            if params.get("lora_dropout") is not None
            else settings.local_lora_dropout
        ),
        targets=list(params.get("lora_target_modules") or settings.local_lora_target_modules),
        beta=DEFAULT_BETA if beta in (None, "auto") else float(beta),
        patience=params.get("early_stopping_patience"),
        min_delta=float(params.get("early_stopping_min_delta") or 0.0),
        eval_steps=params.get("eval_steps"),
        # Off by default: without a varlen (flash-attention) kernel a packed block lets every
        # example attend to the examples before it, which chat SFT should not learn from.
        packing=bool(params.get("packing")),
        gradient_checkpointing=params.get("gradient_checkpointing"),
    )


@dataclass(frozen=True)
class Scale:
    """How many Ray Train workers a run asks for, with what each holds."""

    num_workers: int = 1
    gpus_per_worker: int = 0
    fsdp: bool = False

    @property
    def cpus(self) -> float:
        """CPUs the whole worker group holds."""
        return self.num_workers * get_settings().ray_cpus_per_worker


def scale(params: dict[str, Any]) -> Scale:
    """The run's scale from its hyperparameters (one CPU worker, DDP, by default)."""
    return Scale(
        num_workers=int(params.get("num_workers") or 1),
        gpus_per_worker=int(params.get("gpus_per_worker") or 0),
        fsdp=bool(params.get("fsdp")),
    )


def check_scale(method: dict[str, Any]) -> None:
    """Refuse (422 naming the field) a scale this server's training can never hold.

    `method` in ftq's shape (`hyperparameters` at its top) or OpenAI's (under its type).
    """
    wanted = scale(method.get("hyperparameters") or method_params(method))
    if get_settings().local_backend != "ray":
        _check_inprocess(wanted)
        return
    view = ray_cluster.resources()
    if view is not None:
        refusal = unfit(wanted, view)
        if refusal:
            raise Unprocessable(refusal[1], param=PARAM + refusal[0], code="invalid_value")


def unfit(wanted: Scale, view: ray_cluster.Resources) -> tuple[str, str] | None:
    """The field and the reason when the cluster can never hold `wanted`, else None."""
    per_worker = get_settings().ray_cpus_per_worker
    if wanted.gpus_per_worker > view.node_gpus:
        return "gpus_per_worker", (
            f"gpus_per_worker={wanted.gpus_per_worker} is more than any node of the Ray cluster "
            f"has (at most {view.node_gpus:g} GPUs on one node)"
        )
    if wanted.num_workers * wanted.gpus_per_worker > view.gpus:
        return "gpus_per_worker", (
            f"num_workers={wanted.num_workers} x gpus_per_worker={wanted.gpus_per_worker} is "
            f"more GPUs than the Ray cluster has ({view.gpus:g})"
        )
    if per_worker > view.node_cpus or wanted.cpus > view.cpus:
        return "num_workers", (
            f"num_workers={wanted.num_workers} needs {wanted.cpus:g} CPUs ({per_worker:g} per "
            f"worker, FTQ_RAY_CPUS_PER_WORKER) and the Ray cluster has {view.cpus:g}"
        )
    return None


def _check_inprocess(wanted: Scale) -> None:
    hint = "; the operator trains on Ray with FTQ_LOCAL_BACKEND=ray"
    if wanted.num_workers > 1:
        raise Unprocessable(
            f"num_workers={wanted.num_workers}: this server trains one process per job{hint}",
            param=PARAM + "num_workers",
        )
    if wanted.gpus_per_worker > 1:
        raise Unprocessable(
            f"gpus_per_worker={wanted.gpus_per_worker}: this server trains on one device{hint}",
            param=PARAM + "gpus_per_worker",
        )
    if wanted.fsdp:
        raise Unprocessable(
            f"fsdp shards a model over several workers{hint}",
            param=PARAM + "fsdp",
        )


def check_options(method: dict[str, Any], has_validation: bool) -> None:
    """Refuse (422 naming the field) evaluation options without a validation set to score."""
    params = method.get("hyperparameters") or method_params(method)
    for name in VALIDATED:
        if params.get(name) is not None and not has_validation:
            raise Unprocessable(
                f"{name} scores the validation loss: give validation_dataset or validation_split",
                param=PARAM + name,
            )
    if params.get("packing") and method.get("type") == "dpo":
        raise Unprocessable(
            "packing is for supervised fine-tuning: DPO compares whole answers",
            param=PARAM + "packing",
        )
    if params.get("early_stopping_min_delta") is not None and not params.get(
        "early_stopping_patience"
    ):
        raise Unprocessable(
            "early_stopping_min_delta needs early_stopping_patience (evaluations to wait)",
            param=PARAM + "early_stopping_min_delta",
        )


@dataclass(frozen=True)
class Reference:
    """What `from_checkpoint` names: a job (ftq's id) or a local model, and maybe a step."""

    name: str
    step: int | None

    @property
    def is_job(self) -> bool:
        """Whether `name` is one of ftq's job ids (else a `local:` model name)."""
        return self.name.startswith(JOB_PREFIX)


def parse_reference(value: str) -> Reference:
    """`ftj_…`, `ftj_…:STEP`, `local:…` or `local:…:ckpt-step-STEP` (422 otherwise)."""
    name, step = value, None
    if value.startswith(JOB_PREFIX) and ":" in value:
        name, _, raw = value.partition(":")
        step = int(raw) if raw.isdigit() else None
        if step is None:
            _refuse(f"from_checkpoint {value!r}: the step after ':' must be a number")
    elif value.startswith("local:") and CKPT_MARK in value:
        name, _, raw = value.rpartition(CKPT_MARK)
        step = int(raw) if raw.isdigit() else None
        if step is None:
            _refuse(f"from_checkpoint {value!r}: ckpt-step- must end in a number")
    elif not value.startswith((JOB_PREFIX, "local:")):
        _refuse(
            f"from_checkpoint {value!r}: name a local job (ftj_…[:step]) or its model "
            "(local:…[:ckpt-step-N])"
        )
    return Reference(name, step)


def parent_run(session: Session, ref: Reference) -> LocalRun | None:
    """The local run `ref` names (a model name only once its run succeeded)."""
    if ref.is_job:
        return repository.by_ftq_job(session, ref.name)
    return repository.by_fine_tuned_model(session, ref.name)


def parent_adapter(session: Session, run: LocalRun, step: int | None) -> Path | None:
    """The folder holding `run`'s adapter: its final one, or its kept checkpoint at `step`."""
    if step is None:
        if not run.artifact_prefix:
            return None
        folder = get_blob_store().path(run.artifact_prefix)
    else:
        kept = [c for c in repository.checkpoints(session, run.id) if c.step == step]
        if not kept:
            return None
        folder = Path(kept[0].path)
    return folder if (folder / "adapter_config.json").is_file() else None


def check_parent(session: Session, value: str, model: str) -> None:
    """Refuse (422) a `from_checkpoint` that names no usable adapter of the same base model."""
    ref = parse_reference(value)
    run = parent_run(session, ref)
    if run is None:
        _refuse(
            f"from_checkpoint {value!r} names no local job"
            + ("" if ref.is_job else " that succeeded (a checkpoint of any other: ftj_…:step)")
        )
    if run.model != model:
        _refuse(
            f"from_checkpoint {value!r} was trained on {run.model!r}, not {model!r}: "
            "an adapter continues on its own base model"
        )
    if parent_adapter(session, run, ref.step) is None:
        steps = [c.step for c in repository.checkpoints(session, run.id)]
        where = f"no kept checkpoint at step {ref.step}" if ref.step else "no adapter yet"
        _refuse(
            f"from_checkpoint {value!r}: job {run.ftq_job_id} has {where} "
            f"(status {run.status}; kept checkpoint steps: {steps or 'none'})"
        )


def _refuse(message: str) -> NoReturn:
    raise Unprocessable(message, param=PARAM + "from_checkpoint")
