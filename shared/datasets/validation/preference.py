"""Preference (DPO) examples: `input`, `preferred_output`, `non_preferred_output`.

Tokens: the example's total counts every token once (input, both outputs, reply priming); the
context check applies to the longer of the two sequences the trainer sees (input + one output).
"""

from __future__ import annotations

from typing import Any

from ftq.shared.datasets.validation.chat import Counted, unknown_keys
from ftq.shared.datasets.validation.context import Checks, json_type
from ftq.shared.datasets.validation.counting import REPLY_PRIMING, TOKENS_PER_MESSAGE
from ftq.shared.datasets.validation.messages import check_messages
from ftq.shared.datasets.validation.tools import check_declarations

PREFERENCE_KEYS = frozenset(("input", "preferred_output", "non_preferred_output"))
INPUT_KEYS = frozenset(("messages", "tools", "parallel_tool_calls"))
OUTPUTS = ("preferred_output", "non_preferred_output")


def check_preference(c: Checks, obj: dict[str, Any], line: int) -> Counted | None:
    """Check one preference example; return (total, preferred output tokens, messages)."""
    if not obj.keys() <= PREFERENCE_KEYS:
        unknown_keys(c, obj, PREFERENCE_KEYS, line)
    prompt = _input(c, obj.get("input"), line)
    outputs = [_output(c, obj.get(key), key, line) for key in OUTPUTS]
    if outputs[0] and outputs[1] and outputs[0][0] == outputs[1][0]:
        c.warnings.add(
            line,
            "identical_preference_outputs",
            "preferred_output and non_preferred_output are the same text, so there is no "
            "preference to learn",
            "non_preferred_output",
        )
    if prompt is None:
        return None
    input_tokens, n_messages = prompt
    preferred, other = (out[1] if out else 0 for out in outputs)
    c.too_long(line, input_tokens + max(preferred, other) + REPLY_PRIMING)
    answer = preferred - TOKENS_PER_MESSAGE - c.counter.role["assistant"] if outputs[0] else 0
    return input_tokens + preferred + other + REPLY_PRIMING, answer, n_messages + 1


def _input(c: Checks, inp: Any, line: int) -> tuple[int, int] | None:
    """Check `input` ({messages, tools?, parallel_tool_calls?}); return (tokens, messages)."""
    messages = inp.get("messages") if type(inp) is dict else None
    if type(messages) is not list or not messages:
        what = (
            "missing"
            if inp is None
            else ("without a messages list" if type(inp) is dict else json_type(inp))
        )
        c.errors.add(
            line,
            "missing_input",
            f"input is {what}; a preference example needs input: {{messages: [...]}}",
            "input",
        )
        return None
    assert isinstance(inp, dict)
    if not inp.keys() <= INPUT_KEYS:
        unknown_keys(c, inp, INPUT_KEYS, line, "input.")
    declared, tool_tokens = check_declarations(c, inp, line, "input.")
    turns = check_messages(c, messages, line, "input.messages", declared)
    return turns.tokens + tool_tokens, turns.count


def _output(c: Checks, value: Any, key: str, line: int) -> tuple[str, int] | None:
    """One preference output: a list with one assistant text message; (text, tokens)."""
    if type(value) is not list or not value:
        c.errors.add(
            line,
            "missing_preference_output",
            f"{key} must be a list holding one assistant message",
            key,
        )
        return None
    problem = _output_problem(value)
    if problem:
        c.errors.add(line, "invalid_preference_output", f"{key}{problem}", key)
        return None
    content = value[0]["content"]
    return content, TOKENS_PER_MESSAGE + c.counter.role["assistant"] + c.counter.text(content)


def _output_problem(value: list[Any]) -> str | None:
    """Why a preference output is not one assistant text message (None when it is)."""
    if len(value) != 1:
        return f" must hold exactly one assistant message, not {len(value)}"
    m = value[0]
    if type(m) is not dict or m.get("role") != "assistant":
        return "[0] must be an assistant message"
    if type(m.get("content")) is not str or not m["content"]:
        return "[0].content must be non-empty text (preference outputs are text only)"
    if m.keys() - {"role", "content"}:
        extra = ", ".join(sorted(m.keys() - {"role", "content"}))
        return f"[0] may only have role and content, not {extra}"
    return None
