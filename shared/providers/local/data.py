"""Training data built in memory from the uploaded JSONL: token ids with the loss on assistant
turns only (SFT), or prompt / chosen / rejected conversations (DPO)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One tokenized conversation; `labels` is IGNORE outside trained assistant turns."""

    input_ids: list[int]
    labels: list[int]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines skipped)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _render(tokenizer: Any, messages: list[dict[str, Any]], prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    return str(text)


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    return {"role": message["role"], "content": message.get("content") or ""}


def sft_example(tokenizer: Any, row: dict[str, Any], max_length: int) -> Example | None:
    """Tokenize one chat example by template segments, labelling assistant content only."""
    messages = [_clean(m) for m in row.get("messages") or []]
    weights = [m.get("weight", 1) for m in row.get("messages") or []]
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i, message in enumerate(messages):
        trained = message["role"] == "assistant" and weights[i] != 0
        if message["role"] == "assistant":
            head = _render(tokenizer, messages[:i], prompt=True)
            _extend(tokenizer, head[len(done) :], ids, labels, False)
            done = head
        text = _render(tokenizer, messages[: i + 1], prompt=False)
        _extend(tokenizer, text[len(done) :], ids, labels, trained)
        done = text
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    return Example(ids, labels)


def _extend(tokenizer: Any, text: str, ids: list[int], labels: list[int], trained: bool) -> None:
    if not text:
        return
    piece = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids.extend(piece)
    labels.extend(piece if trained else [IGNORE] * len(piece))


def sft_examples(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> list[Example]:
    """Every trainable example of a chat dataset."""
    built = (sft_example(tokenizer, row, max_length) for row in rows)
    return [example for example in built if example is not None]


def pack(examples: list[Example], max_length: int) -> list[Example]:
    """Examples laid end to end in blocks of at most `max_length` tokens, none cut in two.

    The labels stay as they were (assistant tokens only), except each example's first token: in
    a block it would be predicted from the example before it, so it is never a label.
    """
    blocks: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    for example in examples:
        if ids and len(ids) + len(example.input_ids) > max_length:
            blocks.append(Example(ids, labels))
            ids, labels = [], []
        ids.extend(example.input_ids)
        labels.extend([IGNORE, *example.labels[1:]])
    if ids:
        blocks.append(Example(ids, labels))
    return blocks


class Collator:
    """Pads a batch on the right; padding is ignored by the loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        """Tensors for one batch."""
        import torch

        width = max(len(item["input_ids"]) for item in batch)
        ids, labels, mask = [], [], []
        for item in batch:
            gap = width - len(item["input_ids"])
            ids.append(item["input_ids"] + [self.pad_id] * gap)
            labels.append(item["labels"] + [IGNORE] * gap)
            mask.append([1] * len(item["input_ids"]) + [0] * gap)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


def as_dataset(examples: list[Example]) -> list[dict[str, list[int]]]:
    """An in-memory dataset the Trainer can index."""
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]


def dpo_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI preference lines as conversational prompt / chosen / rejected rows."""
    built = []
    for row in rows:
        prompt = [_clean(m) for m in (row.get("input") or {}).get("messages") or []]
        chosen = [_clean(m) for m in row.get("preferred_output") or []]
        rejected = [_clean(m) for m in row.get("non_preferred_output") or []]
        if prompt and chosen and rejected:
            built.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return built


def is_preference(rows: list[dict[str, Any]]) -> bool:
    """Whether a dataset holds preference pairs."""
    return bool(rows) and "preferred_output" in rows[0]
