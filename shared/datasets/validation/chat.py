"""Chat examples (`messages`) and OpenAI evals records (`input`, `ideal`)."""

from __future__ import annotations

from typing import Any

from ftq.shared.datasets.validation.context import Checks, json_type
from ftq.shared.datasets.validation.counting import REPLY_PRIMING, TOKENS_PER_MESSAGE
from ftq.shared.datasets.validation.messages import Turns, check_messages
from ftq.shared.datasets.validation.tools import check_declarations

CHAT_KEYS = frozenset(("messages", "tools", "functions", "parallel_tool_calls"))
EVALS_KEYS = frozenset(("input", "ideal"))
Counted = tuple[int, int, int]


def unknown_keys(
    c: Checks, obj: dict[str, Any], allowed: frozenset[str], line: int, prefix: str = ""
) -> None:
    """Warn about top-level keys that training ignores."""
    for key in sorted(obj.keys() - allowed):
        c.warnings.add(
            line,
            "unrecognized_example_key",
            f"{prefix}{key} is not part of the format and is ignored (expected: "
            f"{', '.join(sorted(allowed))})",
            f"{prefix}{key}",
        )


def check_chat(c: Checks, obj: dict[str, Any], line: int) -> Counted | None:
    """Check one chat example; return (total tokens, assistant tokens, messages)."""
    if not obj.keys() <= CHAT_KEYS:
        unknown_keys(c, obj, CHAT_KEYS, line)
    messages = obj.get("messages")
    if type(messages) is not list or not messages:
        what = (
            "missing"
            if messages is None
            else ("an empty list" if messages == [] else json_type(messages))
        )
        c.errors.add(
            line,
            "missing_messages_list",
            f"messages is {what}; a chat example needs a list of messages",
            "messages",
        )
        return None
    declared, tool_tokens = check_declarations(c, obj, line)
    turns = check_messages(c, messages, line, "messages", declared)
    _conversation_rules(c, turns, line)
    total = turns.tokens + tool_tokens + REPLY_PRIMING
    c.too_long(line, total)
    return total, turns.assistant_tokens, turns.count


def _conversation_rules(c: Checks, turns: Turns, line: int) -> None:
    """Rules about the conversation as a whole."""
    if not c.fine_tune:
        if turns.last_role != "assistant":
            c.errors.add(
                line,
                "eval_missing_reference",
                "an eval example must end with the assistant turn it is scored against",
                "messages",
            )
        return
    if turns.n_assistant == 0:
        c.errors.add(
            line,
            "example_missing_assistant_message",
            "the example has no assistant message, so there is nothing to learn",
            "messages",
        )
    elif turns.n_weight_zero == turns.n_assistant:
        c.warnings.add(
            line,
            "all_assistant_weights_zero",
            "every assistant message has weight 0, so the example teaches nothing",
            "messages",
        )
    if not turns.has_system:
        c.warnings.add(
            line, "missing_system_message", "the example has no system message", "messages"
        )
    if not turns.has_user:
        c.warnings.add(line, "missing_user_message", "the example has no user message", "messages")


def check_evals(c: Checks, obj: dict[str, Any], line: int) -> Counted | None:
    """Check one evals record `{"input": [...], "ideal": ...}` (eval datasets only)."""
    if c.fine_tune:
        c.errors.add(
            line,
            "evals_record_not_trainable",
            "this is an OpenAI evals record {input, ideal}, not a fine-tuning example: convert "
            "it with `ftq convert FILE -o OUT` (messages = input + the ideal answer)",
            "input",
        )
        return None
    if not obj.keys() <= EVALS_KEYS:
        unknown_keys(c, obj, EVALS_KEYS, line)
    inp = obj.get("input")
    if type(inp) is list and inp:
        turns = check_messages(c, inp, line, "input", None)
        tokens, n_messages = turns.tokens, turns.count
    elif type(inp) is str and inp:
        tokens = TOKENS_PER_MESSAGE + c.counter.role["user"] + c.counter.text(inp)
        n_messages = 1
    else:
        c.errors.add(line, "missing_input", "input must be a list of messages or a string", "input")
        return None
    ideal = _ideal(c, obj.get("ideal"), line)
    answer = c.counter.text(ideal) if ideal else 0
    total = tokens + TOKENS_PER_MESSAGE + c.counter.role["assistant"] + answer + REPLY_PRIMING
    return total, answer, n_messages + 1


def _ideal(c: Checks, ideal: Any, line: int) -> str | None:
    """The reference answer: a string, or the first of a list of strings."""
    if type(ideal) is str and ideal:
        return ideal
    if type(ideal) is list and ideal and all(type(v) is str and v for v in ideal):
        return str(ideal[0])
    c.errors.add(line, "invalid_ideal", "ideal must be a string or a list of strings", "ideal")
    return None
