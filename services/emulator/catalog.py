"""Models the emulator (a test double of OpenAI) knows: fine-tunable snapshots and chat models."""

from __future__ import annotations

FINE_TUNABLE = {
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo-1106",
    "gpt-3.5-turbo-0613",
    "babbage-002",
    "davinci-002",
    "o4-mini-2025-04-16",
}
ALIASES = {
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
    "o4-mini": "o4-mini-2025-04-16",
}
CHAT_MODELS = (FINE_TUNABLE - {"babbage-002", "davinci-002"}) | set(ALIASES)


def snapshot(model: str) -> str | None:
    """The snapshot a fine-tuning request for `model` trains, or None when not fine-tunable."""
    model = ALIASES.get(model, model)
    return model if model in FINE_TUNABLE else None


def ft_base(model: str) -> str:
    """The base snapshot inside an `ft:` name (`ft:{base}:{org}:{suffix}:{id}`)."""
    return model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 2 else model
