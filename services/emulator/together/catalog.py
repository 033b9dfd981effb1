"""Together AI's fine-tunable models as the emulator (a test double) knows them, with limits.

Context lengths and batch sizes are those of Together's "Supported models" tables
(docs.together.ai/docs/fine-tuning-models, LoRA and full fine-tuning); a model missing from the
full table is LoRA-only (`supports_full_training: false`, full limits reported as zero, as the
SDK documents). Epoch, eval, checkpoint, rank and learning-rate bounds and the prices are the
emulator's own round figures, close to Together's published ones, not a claim about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_RANK = 8
MAX_RANK = 64
MAX_EPOCHS = 20
MAX_EVALS = 100
MAX_CHECKPOINTS = 20
MIN_LEARNING_RATE = 1e-8
MAX_LEARNING_RATE = 1.0
MIN_MAX_SEQ_LENGTH = 1024
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# USD per million trained tokens by size tier (<=16B, <=69B, larger): (LoRA, full) x (SFT, DPO).
PRICES = {
    ("sft", True): (0.48, 1.50, 2.90),
    ("sft", False): (0.54, 1.65, 3.20),
    ("dpo", True): (1.20, 3.75, 7.25),
    ("dpo", False): (1.35, 4.12, 8.00),
}


@dataclass(frozen=True)
class Batches:
    """Batch-size limits of one training type: SFT maximum, DPO maximum, minimum."""

    max_sft: int
    max_dpo: int
    minimum: int

    def as_dict(self) -> dict[str, int]:
        """The limits object of `/fine-tunes/models/limits`."""
        return {
            "max_batch_size": self.max_sft,
            "max_batch_size_dpo": self.max_dpo,
            "min_batch_size": self.minimum,
        }

    def maximum(self, method: str) -> int:
        """The largest batch of a training method ("sft" or "dpo")."""
        return self.max_dpo if method == "dpo" else self.max_sft


@dataclass(frozen=True)
class TogetherModel:
    """One fine-tunable base model."""

    name: str
    billions: float
    ctx_sft: int
    ctx_dpo: int
    lora: Batches
    full: Batches | None
    reasoning: bool = False

    @property
    def param_count(self) -> int:
        """Parameters, from the size in the name."""
        return int(self.billions * 1e9)

    @property
    def short_name(self) -> str:
        """The name without its organisation, as output names carry it."""
        return self.name.rsplit("/", 1)[-1]

    def batches(self, lora: bool) -> Batches | None:
        """The batch limits of LoRA or full training (None: full training unsupported)."""
        return self.lora if lora else self.full


EIGHT = Batches(8, 8, 8)
MODELS = {
    model.name: model
    for model in (
        TogetherModel(
            "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", 8, 131072, 16384, EIGHT, EIGHT
        ),
        TogetherModel("meta-llama/Meta-Llama-3.1-8B-Reference", 8, 131072, 16384, EIGHT, EIGHT),
        TogetherModel(
            "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference",
            70,
            24576,
            8192,
            EIGHT,
            Batches(16, 16, 16),
        ),
        TogetherModel(
            "meta-llama/Llama-3.3-70B-Instruct-Reference",
            70,
            24576,
            8192,
            EIGHT,
            Batches(16, 16, 16),
        ),
        TogetherModel("meta-llama/Llama-3.2-3B-Instruct", 3, 131072, 24576, EIGHT, EIGHT),
        TogetherModel("meta-llama/Llama-3.2-1B-Instruct", 1, 131072, 24576, EIGHT, EIGHT),
        TogetherModel("Qwen/Qwen2.5-7B-Instruct", 7, 32768, 16384, EIGHT, None),
        TogetherModel("Qwen/Qwen2.5-14B-Instruct", 14, 32768, 16384, EIGHT, None),
        TogetherModel("Qwen/Qwen3-8B", 8, 32768, 16384, EIGHT, EIGHT, reasoning=True),
        TogetherModel("mistralai/Mistral-7B-Instruct-v0.2", 7, 32768, 32768, EIGHT, EIGHT),
        TogetherModel("openai/gpt-oss-20b", 20, 16384, 8192, EIGHT, None, reasoning=True),
    )
}


def limits(model: TogetherModel) -> dict[str, Any]:
    """`GET /fine-tunes/models/limits` for one model."""
    full = model.full or Batches(0, 0, 0)
    return {
        "model_name": model.name,
        "default_gradient_accumulation_steps": 1,
        "lora_training": {
            **model.lora.as_dict(),
            "default_rank": DEFAULT_RANK,
            "max_rank": MAX_RANK,
            "target_modules": list(TARGET_MODULES),
        },
        "full_training": full.as_dict(),
        "max_learning_rate": MAX_LEARNING_RATE,
        "min_learning_rate": MIN_LEARNING_RATE,
        "max_num_checkpoints": MAX_CHECKPOINTS,
        "max_num_epochs": MAX_EPOCHS,
        "max_num_evals": MAX_EVALS,
        "max_seq_length_dpo": model.ctx_dpo,
        "max_seq_length_sft": model.ctx_sft,
        "merge_output_lora": True,
        "min_max_seq_length": MIN_MAX_SEQ_LENGTH,
        "supports_full_training": model.full is not None,
        "supports_reasoning": model.reasoning,
        "supports_tools": True,
        "supports_vision": False,
    }


def price(model: TogetherModel, tokens: int, method: str, lora: bool) -> float:
    """The emulated price in USD of training `tokens` tokens."""
    small, medium, large = PRICES[(method, lora)]
    per_million = small if model.billions <= 16 else medium if model.billions < 70 else large
    return round(tokens * per_million / 1e6, 6)
