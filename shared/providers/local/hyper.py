"""Hyperparameters of a local run: OpenAI's names and "auto", plus LoRA's own."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ftq.shared.datasets.validation.stats import auto_n_epochs
from ftq.shared.errors import Unprocessable
from ftq.shared.providers.local import ray_cluster
from ftq.shared.settings import get_settings

MAX_AUTO_BATCH = 256
AUTO_BATCH_SHARE = 0.002  # OpenAI's "auto" batch: about 0.2% of the examples
DEFAULT_BETA = 0.1
PARAM = "method.hyperparameters."


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

    def describe(self) -> str:
        """One line for the job's events."""
        return (
            f"Hyperparameters: n_epochs={self.n_epochs}, batch_size={self.batch_size}, "
            f"learning_rate={self.learning_rate:g} (multiplier {self.multiplier:g} x base "
            f"{get_settings().local_base_learning_rate:g}), LoRA rank={self.rank} "
            f"alpha={self.alpha} dropout={self.dropout:g} target_modules={','.join(self.targets)}"
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
