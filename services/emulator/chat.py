"""Deterministic chat answers of the emulator (a test double of OpenAI; no model runs).

Rule, for the last user message of a request:
- an `ft:` model whose job's training file taught an answer for exactly this prompt (the last
  user turn, whitespace-trimmed) replies with that answer (for evals-style data: the "ideal");
- otherwise, when the prompt lists multiple-choice options (lines starting "A." .. "E.", "A)" or
  "(A)"), the reply is one of those letters picked by a hash of (model, prompt);
- otherwise an `ft:` model replies with the answer taught for the most similar trained prompt
  (most shared words), so it imitates the trained style on unseen prompts of the same kind;
- otherwise the reply is a fixed sentence naming the model and a hash of the prompt.
A checkpoint (or a final model) of quality q < 1 answers as its job taught only for the share q
of prompts picked by a hash of (model, prompt), and like a base model for the rest; q follows the
step and the job's curve (`quality`): rising to 1 at the end of a healthy run, peaking where the
validation loss bottoms out (35 % of the run) for an overfit one.
So base models score about chance on multiple-choice evals, and fine-tuned models score 100% on
prompts they were trained on, about chance on unseen multiple-choice ones, and some text overlap
(BLEU, ROUGE-L) on unseen free-text prompts like their training data.
Usage counts tokens as characters / 4 (rounded up) plus 3 per message.
With `stream: true` the same completion comes as OpenAI's `chat.completion.chunk` events: a role
chunk, one chunk per word of the reply, a finish chunk, and (`stream_options.include_usage`) a
usage chunk with no choices.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ftq.services.emulator.datafile import last_user_text, message_text
from ftq.services.emulator.ids import stable_id, unit_float

PIECE = re.compile(r"\S+\s*|\s+")
OPTION = re.compile(r"^\s*\(?([A-E])[.):]\s", re.MULTILINE)
WORD = re.compile(r"[a-z0-9]+")


def options(prompt: str) -> list[str]:
    """The option letters listed in a prompt, in order, when there are at least two."""
    letters = list(dict.fromkeys(OPTION.findall(prompt)))
    return letters if len(letters) >= 2 else []


def quality(step: int, total: int, curve: str) -> float:
    """How well a model saved at `step` of `total` follows its training (1: always)."""
    x = step / max(total, 1)
    if curve == "overfit":
        return max(0.2, 1.0 - 1.5 * abs(x - 0.35))
    if curve in ("underfit", "diverge", "noisy"):
        return 1.0 if step >= total else max(0.2, x)
    return min(1.0, 0.4 + 0.6 * x)


def answer(model: str, prompt: str, taught: dict[str, str], quality: float = 1.0) -> str:
    """The emulated reply to `prompt`."""
    if quality < 1.0 and unit_float(model, "quality", prompt) >= quality:
        taught = {}
    if prompt in taught:
        return taught[prompt]
    letters = options(prompt)
    if letters:
        return letters[int(unit_float(model, prompt) * len(letters))]
    nearest = nearest_answer(prompt, taught)
    if nearest is not None:
        return nearest
    return f"Emulated reply from {model} ({stable_id('', 8, model, prompt)})."


def nearest_answer(prompt: str, taught: dict[str, str]) -> str | None:
    """The answer taught for the trained prompt sharing most words with `prompt` (None if none)."""
    words = _words(prompt)
    best, best_overlap = None, 0.0
    for trained, reply in sorted(taught.items()):
        trained_words = _words(trained)
        overlap = len(words & trained_words) / (len(words | trained_words) or 1)
        if overlap > best_overlap:
            best, best_overlap = reply, overlap
    return best


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def tokens(text: str) -> int:
    """Rough token count: characters / 4, rounded up."""
    return math.ceil(len(text) / 4)


def completion(
    completion_id: str,
    model: str,
    messages: list[dict[str, Any]],
    taught: dict[str, str],
    now: int,
    quality: float = 1.0,
) -> dict[str, Any]:
    """A `chat.completion` object."""
    reply = answer(model, last_user_text(messages), taught, quality)
    prompt_tokens = sum(tokens(message_text(m.get("content"))) + 3 for m in messages)
    completion_tokens = tokens(reply)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": now,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }


def chunks(completion: dict[str, Any], include_usage: bool = False) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects streaming `completion` (deltas concatenate to it)."""
    reply = completion["choices"][0]["message"]["content"]
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": "", "refusal": None}, None)
    ]
    deltas += [({"content": piece}, None) for piece in PIECE.findall(reply)]
    deltas.append(({}, "stop"))
    head = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "service_tier": completion["service_tier"],
        "system_fingerprint": None,
    }
    found = [
        {**head, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}]}
        for d, f in deltas
    ]
    if include_usage:
        found.append({**head, "choices": [], "usage": completion["usage"]})
    return found
