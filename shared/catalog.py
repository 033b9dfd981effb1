"""The fine-tunable models in one table: context, encoding, training price, methods, shutdown.

Prices are USD per 1M training tokens where OpenAI states them; `None` means OpenAI leaves the
price to the account ("configurable"). Set `FTQ_TRAINING_PRICES` to a JSON object such as
`{"gpt-4o-2024-08-06": 25.0}` to give or override a price (keys are model names or aliases).
A context of `None` means OpenAI does not publish the training context: no length check is made.

`TOGETHER_MODELS` are Together AI's fine-tunable models (its supported-models table,
docs.together.ai/docs/fine-tuning-models: SFT context, LoRA and full tuning, SFT and DPO). Prices
are Together's LoRA SFT and full SFT USD per 1M tokens by size bracket as last read; Together
publishes them on together.ai/pricing and changes them, so a deployment should set its own with
`FTQ_TRAINING_PRICES`, and Together's own estimate-price call is the figure at submission. They
are looked up by `get_model` like OpenAI's; `tokenizer` names the model's own tokenizer where the
counting `encoding` is only an estimate of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from ftq.shared.errors import BadRequest, Unprocessable
from ftq.shared.settings import Settings

Method = Literal["supervised", "dpo"]
DataFormat = Literal["chat", "completion"]
Tuning = Literal["full", "lora"]
PRICES_ENV = "FTQ_TRAINING_PRICES"
# Reported lifecycle facts (DESIGN.md, "Facts that shape it"):
# - OpenAI takes no new fine-tuning jobs from any organisation after 2027-01-06 (refused already
#   since 2026-05-07 for organisations that never fine-tuned, and since 2026-07-02 for those
#   without fine-tuned inference in the last 60 days: those get a 403, `provider_unavailable`).
# - OpenAI's 2026-10-14 deprecation notice retires gpt-4o-2024-08-06, gpt-4o-mini-2024-07-18,
#   gpt-4.1-2025-04-14 and gpt-4.1-mini-2025-04-14, with their fine-tuned models, on 2027-01-14.
# - OpenAI's hosted Evals shut down on 2026-11-30: ftq grades locally.
# Azure OpenAI keeps fine-tuning and publishes its own retirements: no dates are assumed for it.
OPENAI_JOBS_CLOSE = date(2027, 1, 6)
SHUTDOWN_2027 = date(2027, 1, 14)
LIFECYCLE_SOURCE = "OpenAI's fine-tuning wind-down and its 2026-10-14 deprecation notice"
RETIREMENT_WARNING_DAYS = 30


@dataclass(frozen=True)
class ModelInfo:
    """One fine-tunable base model."""

    name: str
    encoding: str
    context: int | None
    price_per_1m: float | None
    methods: tuple[Method, ...]
    format: DataFormat = "chat"
    aliases: tuple[str, ...] = ()
    vision: bool = False
    shutdown: date | None = None
    # Who tunes it (empty: OpenAI and its doubles), and how: "full" weights or "lora" adapters.
    providers: tuple[str, ...] = ()
    tuning: tuple[Tuning, ...] = ("full",)
    # The model's own tokenizer when `encoding` only estimates it (None: `encoding` is its own).
    tokenizer: str | None = None
    price_full_per_1m: float | None = None

    def supports(self, method: str) -> bool:
        """Whether the model can be trained with `method` (supervised or dpo)."""
        return method in self.methods

    @property
    def exact_tokens(self) -> bool:
        """Whether token counts with `encoding` are the model's own."""
        return self.tokenizer is None


class UnknownModel(BadRequest):
    """A model name that is not in the catalog of fine-tunable models."""

    code = "model_not_available"


_SFT_DPO: tuple[Method, ...] = ("supervised", "dpo")
_SFT: tuple[Method, ...] = ("supervised",)

MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        "gpt-4.1-2025-04-14",
        "o200k_base",
        None,
        None,
        _SFT_DPO,
        aliases=("gpt-4.1",),
        shutdown=SHUTDOWN_2027,
    ),
    ModelInfo(
        "gpt-4.1-mini-2025-04-14",
        "o200k_base",
        None,
        None,
        _SFT_DPO,
        aliases=("gpt-4.1-mini",),
        shutdown=SHUTDOWN_2027,
    ),
    ModelInfo(
        "gpt-4.1-nano-2025-04-14", "o200k_base", None, None, _SFT_DPO, aliases=("gpt-4.1-nano",)
    ),
    ModelInfo(
        "gpt-4o-2024-08-06",
        "o200k_base",
        65_536,
        None,
        _SFT_DPO,
        aliases=("gpt-4o",),
        vision=True,
        shutdown=SHUTDOWN_2027,
    ),
    ModelInfo(
        "gpt-4o-mini-2024-07-18",
        "o200k_base",
        65_536,
        3.00,
        _SFT_DPO,
        aliases=("gpt-4o-mini",),
        shutdown=SHUTDOWN_2027,
    ),
    ModelInfo("gpt-3.5-turbo-0125", "cl100k_base", 16_385, 8.00, _SFT, aliases=("gpt-3.5-turbo",)),
    ModelInfo("gpt-3.5-turbo-1106", "cl100k_base", 16_385, None, _SFT),
    ModelInfo("gpt-3.5-turbo-0613", "cl100k_base", 4_096, None, _SFT),
    ModelInfo("babbage-002", "cl100k_base", None, None, _SFT, format="completion"),
    ModelInfo("davinci-002", "cl100k_base", None, None, _SFT, format="completion"),
)

TOGETHER = ("together",)
_LORA_FULL: tuple[Tuning, ...] = ("lora", "full")
_LORA: tuple[Tuning, ...] = ("lora",)
LLAMA3 = "Meta Llama 3 (128K BPE)"
QWEN2 = "Qwen2 (151K BPE)"
MISTRAL = "Mistral (32K SentencePiece)"


def _together(
    name: str,
    context: int,
    prices: tuple[float | None, float | None],
    tokenizer: str | None,
    tuning: tuple[Tuning, ...] = _LORA_FULL,
) -> ModelInfo:
    """One of Together's models: chat format, SFT and DPO, counted with cl100k_base unless its
    own tokenizer is a tiktoken one."""
    return ModelInfo(
        name,
        "cl100k_base" if tokenizer else "o200k_base",
        context,
        prices[0],
        _SFT_DPO,
        providers=TOGETHER,
        tuning=tuning,
        tokenizer=tokenizer,
        price_full_per_1m=prices[1],
    )


# Together's size tiers (USD per 1M training tokens, LoRA SFT / full SFT): up to 16B, 17-69B,
# 70-100B. gpt-oss tokenizes with o200k_harmony, o200k_base's vocabulary plus special tokens, so
# o200k_base counts its text exactly.
_SMALL, _MEDIUM, _LARGE = (0.48, 0.54), (1.50, 1.65), (2.90, 3.20)
TOGETHER_MODELS: tuple[ModelInfo, ...] = (
    _together("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", 131_072, _SMALL, LLAMA3),
    _together("meta-llama/Meta-Llama-3.1-70B-Instruct-Reference", 131_072, _LARGE, LLAMA3),
    _together("meta-llama/Llama-3.3-70B-Instruct-Reference", 131_072, _LARGE, LLAMA3),
    _together("meta-llama/Llama-3.2-3B-Instruct", 131_072, _SMALL, LLAMA3),
    _together("meta-llama/Llama-3.2-1B-Instruct", 131_072, _SMALL, LLAMA3),
    _together("Qwen/Qwen2.5-7B-Instruct", 32_768, _SMALL, QWEN2),
    _together("Qwen/Qwen2.5-14B-Instruct", 32_768, _SMALL, QWEN2),
    _together("Qwen/Qwen2.5-72B-Instruct", 32_768, _LARGE, QWEN2),
    _together("Qwen/Qwen3-8B", 32_768, _SMALL, QWEN2),
    _together("mistralai/Mistral-7B-Instruct-v0.2", 32_768, _SMALL, MISTRAL),
    _together("openai/gpt-oss-20b", 16_384, (_MEDIUM[0], None), None, _LORA),
    _together("openai/gpt-oss-120b", 16_384, (None, None), None, _LORA),
)

_BY_NAME: dict[str, ModelInfo] = {
    key: info for info in (*MODELS, *TOGETHER_MODELS) for key in (info.name, *info.aliases)
}


def base_model_name(name: str) -> str:
    """The base of a fine-tuned name: `ft:gpt-4o-mini-2024-07-18:org:sfx:id` -> the snapshot."""
    name = name.strip()
    if name.startswith("ft:"):
        parts = name.split(":")
        return parts[1] if len(parts) > 1 else ""
    return name


def _price_overrides() -> dict[str, float]:
    """Prices from `FTQ_TRAINING_PRICES`, keyed by canonical model name."""
    raw = os.environ.get(PRICES_ENV, "").strip()
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PRICES_ENV} must be a JSON object of model -> USD per 1M") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{PRICES_ENV} must be a JSON object of model -> USD per 1M")
    return {
        _BY_NAME[key].name if key in _BY_NAME else key: float(price)
        for key, price in values.items()
    }


def get_model(name: str) -> ModelInfo:
    """The catalog entry for a snapshot, an alias or an `ft:` model (by its base)."""
    info = _BY_NAME.get(base_model_name(name))
    if info is None:
        known = ", ".join(m.name for m in (*MODELS, *TOGETHER_MODELS))
        raise UnknownModel(
            f"Model {name!r} cannot be fine-tuned here; fine-tunable models: {known}",
            param="model",
        )
    price = _price_overrides().get(info.name)
    return info if price is None else replace(info, price_per_1m=price)


def list_models() -> list[ModelInfo]:
    """Every fine-tunable OpenAI model, prices overrides applied."""
    return [get_model(info.name) for info in MODELS]


def provider_models(provider: str) -> list[ModelInfo]:
    """The models a provider that names itself in the catalog tunes (Together's), overrides
    applied."""
    return [get_model(info.name) for info in TOGETHER_MODELS if provider in info.providers]


@dataclass(frozen=True)
class Lifecycle:
    """When a provider stops taking new jobs for a model, and when the model stops serving."""

    jobs_close: date | None
    shutdown: date | None
    source: str = ""

    def closed_since(self, today: date) -> date | None:
        """The day new fine-tuning jobs for the model stopped, if that is `today` or earlier."""
        passed = [day for day in (self.jobs_close, self.shutdown) if day and today >= day]
        return min(passed, default=None)


class ModelClosed(Unprocessable):
    """A model its provider takes no new fine-tuning jobs for."""

    code = "model_closed"


def lifecycle(name: str, provider: str) -> Lifecycle:
    """The lifecycle of `name` at `provider` (only OpenAI's are known; others never close)."""
    if provider != "openai":
        return Lifecycle(None, None)
    info = _BY_NAME.get(base_model_name(name))
    shutdown = info.shutdown if info else None
    return Lifecycle(OPENAI_JOBS_CLOSE, shutdown, LIFECYCLE_SOURCE)


def check_open(
    name: str, provider: str, today: date, alternatives: Callable[[], list[str]]
) -> None:
    """Refuse (422, naming the date and the open providers) a model that takes no new jobs."""
    life = lifecycle(name, provider)
    day = life.closed_since(today)
    if day is not None:
        choices = ", ".join(alternatives()) or "none is configured on this server"
        raise ModelClosed(
            f"{provider} takes no new fine-tuning jobs for {name} since {day.isoformat()} "
            f"({life.source}); open providers: {choices}",
            param="model",
        )


def retirement_warning(name: str, provider: str, today: date) -> str | None:
    """A warning when the model (and what was tuned from it) retires within 30 days."""
    life = lifecycle(name, provider)
    if life.shutdown is not None and (life.shutdown - today).days <= RETIREMENT_WARNING_DAYS:
        return (
            f"{name} and the models tuned from it stop serving at {provider} on "
            f"{life.shutdown.isoformat()} ({life.source}); plan to move to another provider"
        )
    return None


_SMALL_OPEN = ("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "Qwen/Qwen2.5-7B-Instruct")
_LARGE_OPEN = (
    "meta-llama/Llama-3.3-70B-Instruct-Reference",
    "Qwen/Qwen2.5-72B-Instruct",
    "openai/gpt-oss-120b",
)
# Failover's default equivalents of OpenAI's models: open models of a similar size class (a
# judgement of size, not a measured match: a job that cares names its model in `model_map`).
EQUIVALENTS: dict[str, tuple[str, ...]] = {
    "gpt-4o-mini-2024-07-18": _SMALL_OPEN,
    "gpt-4.1-mini-2025-04-14": _SMALL_OPEN,
    "gpt-4.1-nano-2025-04-14": _SMALL_OPEN,
    "gpt-3.5-turbo-0125": _SMALL_OPEN,
    "gpt-3.5-turbo-1106": _SMALL_OPEN,
    "gpt-3.5-turbo-0613": _SMALL_OPEN,
    "gpt-4o-2024-08-06": _LARGE_OPEN,
    "gpt-4.1-2025-04-14": _LARGE_OPEN,
}


def default_model(provider: str) -> str:
    """The provider's newest chat model with no announced shutdown.

    The catalog lists each provider's models newest first; OpenAI's doubles (the emulator, Azure)
    follow OpenAI's table. A model with a retirement date is never the default, however far off.
    """
    candidates = provider_models(provider) or list_models()
    open_models = [m for m in candidates if m.format == "chat" and m.shutdown is None]
    return (open_models or candidates)[0].name


def configured_default_model(settings: Settings) -> str:
    """`FTQ_DEFAULT_MODEL`, or the default provider's newest open model."""
    return settings.default_model or default_model(settings.provider)


def equivalents(name: str) -> tuple[str, ...]:
    """Models the catalog counts as equivalent to `name` for failover, nearest first."""
    info = _BY_NAME.get(base_model_name(name))
    return EQUIVALENTS.get(info.name, ()) if info else ()
