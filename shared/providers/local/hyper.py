"""Hyperparameters of a local run: OpenAI's names and "auto", plus LoRA's own."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ftq.shared.datasets.validation.stats import auto_n_epochs
from ftq.shared.settings import get_settings

MAX_AUTO_BATCH = 256
AUTO_BATCH_SHARE = 0.002  # OpenAI's "auto" batch: about 0.2% of the examples
DEFAULT_BETA = 0.1


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
