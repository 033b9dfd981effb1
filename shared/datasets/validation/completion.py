"""Legacy completion examples (`prompt`, `completion`) for babbage-002 and davinci-002."""

from __future__ import annotations

from typing import Any

from ftq.shared.datasets.validation.chat import Counted, unknown_keys
from ftq.shared.datasets.validation.context import Checks, json_type

COMPLETION_KEYS = frozenset(("prompt", "completion"))


def check_completion(c: Checks, obj: dict[str, Any], line: int) -> Counted | None:
    """Check one completion example; return (prompt + completion, completion tokens, 2)."""
    if not obj.keys() <= COMPLETION_KEYS:
        unknown_keys(c, obj, COMPLETION_KEYS, line)
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if type(prompt) is not str:
        c.errors.add(
            line, "missing_prompt", f"prompt must be a string, not {json_type(prompt)}", "prompt"
        )
    if type(completion) is not str or not completion:
        what = "empty" if completion == "" else json_type(completion)
        c.errors.add(
            line,
            "missing_completion",
            f"completion must be non-empty text, not {what}",
            "completion",
        )
    asked = c.counter.text(prompt) if type(prompt) is str else 0
    answer = c.counter.text(completion) if type(completion) is str else 0
    c.too_long(line, asked + answer)
    return asked + answer, answer, 2
