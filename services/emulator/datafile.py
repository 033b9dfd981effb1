"""Server-side training-file checks of the emulator (a test double of OpenAI's file validation).

The rules mirror what OpenAI is seen to enforce (OPENAI.md): JSONL, one format per method, at least
10 examples. Tokens are counted roughly as UTF-8 bytes / 4 per example line (rounded up), which is
close enough for `trained_tokens` in a test double.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

MIN_EXAMPLES = 10
TRAINING_ROLES = {"system", "user", "assistant", "tool", "function"}
FORMAT_HELP = {
    "chat": "chat examples with a 'messages' list that includes an assistant message",
    "preference": "preference examples with 'input', 'preferred_output' and 'non_preferred_output'",
    "completion": "examples with 'prompt' and 'completion'",
    "prompt": "examples with a 'messages' list",
}


@dataclass(frozen=True)
class FileFailure:
    """Why a file fails validation: OpenAI's job error code, message and param."""

    code: str
    message: str
    param: str


@dataclass
class DataSummary:
    """What the emulator learns from one JSONL file."""

    kinds: list[str] = field(default_factory=list)
    tokens: int = 0
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def n_examples(self) -> int:
        """Non-blank lines."""
        return len(self.kinds)


def analyze(content: bytes) -> DataSummary:
    """Classify every non-blank line and index prompts to their trained answers."""
    summary = DataSummary()
    for raw in content.splitlines():
        if not raw.strip():
            continue
        summary.tokens += math.ceil(len(raw) / 4)
        example = _parse(raw)
        summary.kinds.append(classify(example))
        _index_answer(summary.answers, example)
    return summary


def _parse(raw: bytes) -> Any:
    """A JSON value, or None when the line is not JSON."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def classify(example: Any) -> str:
    """chat, prompt (no assistant turn), preference, completion, bad_chat, other or json_error."""
    if example is None:
        return "json_error"
    if not isinstance(example, dict):
        return "other"
    if "messages" in example:
        return _classify_messages(example["messages"])
    if {"input", "preferred_output", "non_preferred_output"} <= example.keys():
        return "preference"
    if {"prompt", "completion"} <= example.keys():
        return "completion"
    return "other"


def _classify_messages(messages: Any) -> str:
    """chat, prompt (no assistant turn) or bad_chat."""
    if not isinstance(messages, list) or not messages:
        return "bad_chat"
    if not all(isinstance(m, dict) and m.get("role") in TRAINING_ROLES for m in messages):
        return "bad_chat"
    return "chat" if any(m["role"] == "assistant" for m in messages) else "prompt"


def message_text(content: Any) -> str:
    """The text of a message `content` (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "".join(str(p) for p in parts)
    return ""


def last_user_text(messages: Any) -> str:
    """The last user turn's text, stripped; empty when there is none."""
    if not isinstance(messages, list):
        return ""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return message_text(users[-1].get("content")).strip() if users else ""


def _index_answer(answers: dict[str, str], example: Any) -> None:
    """Remember the answer this example teaches for its last user prompt."""
    if not isinstance(example, dict):
        return
    prompt, answer = _prompt_and_answer(example)
    if prompt and answer:
        answers.setdefault(prompt, answer)


def _prompt_and_answer(example: dict[str, Any]) -> tuple[str, str]:
    """(last user prompt, taught answer) of a chat, preference or completion example."""
    if isinstance(example.get("messages"), list):
        messages = example["messages"]
        replies = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
        reply = message_text(replies[-1].get("content")) if replies else ""
        return last_user_text(messages), reply.strip()
    if isinstance(example.get("input"), dict) and isinstance(example.get("preferred_output"), list):
        outputs = [m for m in example["preferred_output"] if isinstance(m, dict)]
        reply = message_text(outputs[-1].get("content")) if outputs else ""
        return last_user_text(example["input"].get("messages")), reply.strip()
    prompt, completion = example.get("prompt"), example.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str):
        return prompt.strip(), completion.strip()
    return "", ""


def expected_format(method_type: str, model: str) -> str:
    """The example format a job of this method on this model trains on."""
    if method_type == "dpo":
        return "preference"
    if method_type == "reinforcement":
        return "prompt"
    return "completion" if model in {"babbage-002", "davinci-002"} else "chat"


def check(summary: DataSummary, fmt: str, param: str, minimum: int) -> FileFailure | None:
    """The first reason this file fails OpenAI-style validation, if any."""
    allowed = {fmt, "chat"} if fmt == "prompt" else {fmt}
    for line, kind in enumerate(summary.kinds, start=1):
        if kind not in allowed:
            return FileFailure(_invalid_code(param), _format_message(line, kind, fmt), param)
    if summary.n_examples < minimum:
        label = "Training" if param == "training_file" else "Validation"
        message = (
            f"{label} file has {summary.n_examples} example(s), "
            f"but must have at least {minimum} examples"
        )
        return FileFailure("invalid_n_examples", message, param)
    return None


def _invalid_code(param: str) -> str:
    """invalid_training_file or invalid_validation_file."""
    return f"invalid_{param}"


def _format_message(line: int, kind: str, fmt: str) -> str:
    """A person-readable reason for one bad line."""
    if kind == "json_error":
        return f"Invalid file format. Line {line} is not valid JSON."
    if kind == "bad_chat":
        return (
            f"Invalid file format. Example {line}: 'messages' must be a non-empty list of turns "
            f"with roles among {sorted(TRAINING_ROLES)}."
        )
    return f"Invalid file format. Example {line}: this job expects {FORMAT_HELP[fmt]}."
