"""Rules for one list of chat messages, shared by chat, preference and evals records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from ftq.shared.datasets.validation.context import Checks, json_type
from ftq.shared.datasets.validation.counting import (
    TOKENS_PER_CALL,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
)

ROLES = frozenset(("system", "user", "assistant", "tool", "function"))
MESSAGE_KEYS = frozenset(
    ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call")
)
ASSISTANT_ONLY = ("weight", "tool_calls", "function_call")
NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(slots=True)
class Turns:
    """What one pass over a messages list found and counted."""

    tokens: int = 0
    assistant_tokens: int = 0
    count: int = 0
    has_system: bool = False
    has_user: bool = False
    n_assistant: int = 0
    n_weight_zero: int = 0
    last_role: str | None = None
    call_ids: set[str] = field(default_factory=set)


def check_messages(
    c: Checks, messages: list[Any], line: int, prefix: str, declared: frozenset[str] | None
) -> Turns:
    """Check every message, report findings for `line`, and count tokens."""
    turns = Turns()
    encode, role_tokens = c.counter.encode, c.counter.role
    for i, m in enumerate(messages):
        # The usual plain-text turn is checked and counted inline: this loop is the hot path.
        if type(m) is dict and len(m) == 2:
            role, content = m.get("role"), m.get("content")
            if type(content) is str and content:
                if role == "user":
                    n = len(encode(content))
                    turns.has_user = True
                elif role == "assistant":
                    n = len(encode(content))
                    turns.n_assistant += 1
                    turns.assistant_tokens += n
                elif role == "system":
                    n = c.counter.cached(content)
                    turns.has_system = True
                else:
                    _any_message(c, m, i, line, prefix, turns, declared)
                    continue
                turns.tokens += TOKENS_PER_MESSAGE + role_tokens[role] + n
                turns.count += 1
                turns.last_role = role
                continue
        _any_message(c, m, i, line, prefix, turns, declared)
    return turns


def _any_message(
    c: Checks,
    m: Any,
    i: int,
    line: int,
    prefix: str,
    turns: Turns,
    declared: frozenset[str] | None,
) -> None:
    """Check and count a message of any shape."""
    if type(m) is not dict:
        c.errors.add(
            line,
            "message_data_type",
            f"{prefix}[{i}] is {json_type(m)}; each message must be an object with role "
            "and content",
            f"{prefix}[{i}]",
        )
        return
    turns.count += 1
    if not m.keys() <= MESSAGE_KEYS:
        _unknown_keys(c, m, line, f"{prefix}[{i}]")
    role = m.get("role")
    if type(role) is not str or role not in ROLES:
        _bad_role(c, m, line, f"{prefix}[{i}]")
        return
    turns.last_role = role
    _message(c, m, role, line, prefix, i, turns, declared)


def _message(
    c: Checks,
    m: dict[str, Any],
    role: str,
    line: int,
    prefix: str,
    i: int,
    turns: Turns,
    declared: frozenset[str] | None,
) -> None:
    """Check and count one message whose role is known."""
    content = m.get("content")
    if type(content) is str and content:
        n = c.counter.cached(content) if role == "system" else c.counter.text(content)
    else:
        n = _other_content(c, m, role, content, line, f"{prefix}[{i}]")
    extra = 0
    if len(m) > 2 or "content" not in m or role == "tool" or role == "function":
        extra = _extras(c, m, role, line, f"{prefix}[{i}]", turns, declared)
    turns.tokens += TOKENS_PER_MESSAGE + c.counter.role[role] + n + extra
    if role == "assistant":
        turns.n_assistant += 1
        turns.assistant_tokens += n + extra
    elif role == "system":
        turns.has_system = True
    elif role == "user":
        turns.has_user = True


def _extras(
    c: Checks,
    m: dict[str, Any],
    role: str,
    line: int,
    path: str,
    turns: Turns,
    declared: frozenset[str] | None,
) -> int:
    """Check name, weight, tool calls and tool answers; return their tokens."""
    n = _name(c, m, role, line, path)
    if role == "assistant":
        return n + _assistant(c, m, line, path, turns, declared)
    for key in ASSISTANT_ONLY:
        if key in m:
            _not_for_role(c, key, role, line, path, "assistant")
    if role == "tool":
        _tool_answer(c, m, line, path, turns.call_ids)
    elif "tool_call_id" in m:
        _not_for_role(c, "tool_call_id", role, line, path, "tool")
    return n


def _not_for_role(c: Checks, key: str, role: str, line: int, path: str, allowed: str) -> None:
    """Report a key that only another role may carry."""
    c.errors.add(
        line,
        "key_not_allowed_for_role",
        f"{path}.{key} is only allowed on {allowed} messages, not on a {role} message",
        f"{path}.{key}",
    )


def _unknown_keys(c: Checks, m: dict[str, Any], line: int, path: str) -> None:
    """Report each key training does not accept on a message."""
    allowed = ", ".join(sorted(MESSAGE_KEYS))
    for key in m.keys() - MESSAGE_KEYS:
        c.errors.add(
            line,
            "message_unrecognized_key",
            f"{path} has key {key!r}, which training does not accept (allowed: {allowed})",
            f"{path}.{key}",
        )


def _bad_role(c: Checks, m: dict[str, Any], line: int, path: str) -> None:
    """Report a missing or unknown role."""
    role = m.get("role")
    if "role" not in m:
        c.errors.add(line, "message_missing_key", f"{path} has no role", f"{path}.role")
        return
    hint = "; use system for instructions" if role == "developer" else ""
    shown = repr(role) if isinstance(role, str) else json_type(role)
    c.errors.add(
        line,
        "unrecognized_role",
        f"{path}.role is {shown}, not one of system, user, assistant, tool, function{hint}",
        f"{path}.role",
    )


def _other_content(
    c: Checks, m: dict[str, Any], role: str, content: Any, line: int, path: str
) -> int:
    """Content that is not a plain non-empty string: calls, parts, or a finding."""
    if content is None or content == "":
        if role == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            return 0
        if "content" not in m:
            need = "content, tool_calls or function_call" if role == "assistant" else "content"
            c.errors.add(
                line, "message_missing_key", f"{path} ({role}) has no {need}", f"{path}.content"
            )
        else:
            c.errors.add(
                line,
                "missing_content",
                f"{path}.content ({role}) is {'null' if content is None else 'empty'}; "
                "write the text of the turn",
                f"{path}.content",
            )
        return 0
    if type(content) is list:
        return _parts(c, content, role, line, path)
    c.errors.add(
        line,
        "invalid_content",
        f"{path}.content must be a string or a list of content parts, not {json_type(content)}",
        f"{path}.content",
    )
    return 0


def _parts(c: Checks, parts: list[Any], role: str, line: int, path: str) -> int:
    """Tokens of a content-part list; text parts everywhere, image parts in user turns."""
    if not parts:
        c.errors.add(line, "missing_content", f"{path}.content is an empty list", f"{path}.content")
        return 0
    n = 0
    for j, part in enumerate(parts):
        kind = part.get("type") if type(part) is dict else None
        if kind == "text" and isinstance(part.get("text"), str):
            n += c.counter.text(part["text"])
        elif kind == "image_url" and role == "user":
            _image(c, part, line, f"{path}.content[{j}]")
        else:
            allowed = (
                "{type: text, text} or {type: image_url, image_url: {url}}"
                if (role == "user")
                else "{type: text, text}"
            )
            c.errors.add(
                line,
                "invalid_content",
                f"{path}.content[{j}] must be {allowed} in a {role} message",
                f"{path}.content[{j}]",
            )
    return n


def _image(c: Checks, part: dict[str, Any], line: int, path: str) -> None:
    """An image part needs a URL and a vision model; its tokens are not counted."""
    image = part.get("image_url")
    if not (isinstance(image, dict) and isinstance(image.get("url"), str) and image["url"]):
        c.errors.add(
            line, "invalid_content", f"{path}.image_url must be {{url: ...}}", f"{path}.image_url"
        )
    elif not c.vision:
        c.errors.add(
            line,
            "invalid_content",
            f"{path} is an image, which only vision models (gpt-4o-2024-08-06) train on",
            f"{path}",
        )


def _name(c: Checks, m: dict[str, Any], role: str, line: int, path: str) -> int:
    """Tokens of the optional name (required on function turns)."""
    name = m.get("name")
    if name is None:
        if role == "function":
            c.errors.add(
                line,
                "message_missing_key",
                f"{path} is a function turn without a name",
                f"{path}.name",
            )
        return 0
    if type(name) is not str or not NAME.fullmatch(name):
        c.errors.add(
            line,
            "invalid_name",
            f"{path}.name must be 1-64 letters, digits, underscores or dashes",
            f"{path}.name",
        )
        return 0
    return c.counter.text(name) + TOKENS_PER_NAME


def _assistant(
    c: Checks,
    m: dict[str, Any],
    line: int,
    path: str,
    turns: Turns,
    declared: frozenset[str] | None,
) -> int:
    """Check weight and calls of an assistant turn; return the calls' tokens."""
    if "weight" in m:
        weight = m["weight"]
        if type(weight) is bool or weight not in (0, 1):
            c.errors.add(
                line,
                "invalid_weight",
                f"{path}.weight must be 0 or 1, not {json_type(weight)} {weight!r}",
                f"{path}.weight",
            )
        elif weight == 0:
            turns.n_weight_zero += 1
    n = 0
    if m.get("tool_calls") is not None:
        n += _tool_calls(c, m["tool_calls"], line, path, turns.call_ids, declared)
    if m.get("function_call") is not None:
        n += _function_call(c, m["function_call"], line, f"{path}.function_call", declared)
    return n


def _tool_calls(
    c: Checks,
    calls: Any,
    line: int,
    path: str,
    ids: set[str],
    declared: frozenset[str] | None,
) -> int:
    """Check each tool call's id, type, name and JSON arguments; return their tokens."""
    if type(calls) is not list or not calls:
        c.errors.add(
            line,
            "invalid_tool_call",
            f"{path}.tool_calls must be a non-empty list",
            f"{path}.tool_calls",
        )
        return 0
    n = 0
    for j, call in enumerate(calls):
        at = f"{path}.tool_calls[{j}]"
        if type(call) is not dict or not isinstance(call.get("function"), dict):
            c.errors.add(
                line,
                "invalid_tool_call",
                f"{at} must be {{id, type: function, function: {{name, arguments}}}}",
                at,
            )
            continue
        _call_id(c, call.get("id"), line, at, ids)
        if call.get("type") != "function":
            c.errors.add(line, "invalid_tool_call", f'{at}.type must be "function"', f"{at}.type")
        n += _function_call(c, call["function"], line, f"{at}.function", declared, tool=True)
    return n


def _call_id(c: Checks, call_id: Any, line: int, at: str, ids: set[str]) -> None:
    """A tool call needs a fresh non-empty string id."""
    if type(call_id) is not str or not call_id:
        c.errors.add(line, "invalid_tool_call", f"{at}.id must be a non-empty string", f"{at}.id")
    elif call_id in ids:
        c.errors.add(
            line,
            "duplicate_tool_call_id",
            f"{at}.id {call_id!r} is already used by another call in this example",
            f"{at}.id",
        )
    else:
        ids.add(call_id)


def _function_call(
    c: Checks, fn: Any, line: int, at: str, declared: frozenset[str] | None, tool: bool = False
) -> int:
    """Check a {name, arguments} call; return its tokens."""
    code = "invalid_tool_call" if tool else "invalid_function_call"
    if type(fn) is not dict:
        c.errors.add(line, code, f"{at} must be an object {{name, arguments}}", at)
        return 0
    name, args = fn.get("name"), fn.get("arguments")
    if type(name) is not str or not name:
        c.errors.add(line, code, f"{at}.name must be a non-empty string", f"{at}.name")
        name = ""
    elif declared is not None and name not in declared:
        c.warnings.add(
            line,
            "undeclared_tool",
            f"{at}.name {name!r} is not among the functions this example declares",
            f"{at}.name",
        )
    if type(args) is not str:
        c.errors.add(
            line,
            "invalid_tool_arguments",
            f"{at}.arguments must be a string holding a JSON object (json.dumps the arguments),"
            f" not {json_type(args)}",
            f"{at}.arguments",
        )
        return TOKENS_PER_CALL + c.counter.text(name)
    _json_object(c, args, line, f"{at}.arguments")
    return TOKENS_PER_CALL + c.counter.text(name) + c.counter.text(args)


def _json_object(c: Checks, args: str, line: int, at: str) -> None:
    """Arguments must parse as a JSON object."""
    try:
        value = orjson.loads(args)
    except orjson.JSONDecodeError as exc:
        c.errors.add(line, "invalid_tool_arguments", f"{at} is not valid JSON: {exc.msg}", at)
        return
    if type(value) is not dict:
        c.errors.add(
            line,
            "invalid_tool_arguments",
            f"{at} must hold a JSON object, not {json_type(value)}",
            at,
        )


def _tool_answer(c: Checks, m: dict[str, Any], line: int, path: str, ids: set[str]) -> None:
    """A tool turn must answer a call an earlier assistant turn made."""
    call_id = m.get("tool_call_id")
    if call_id is None:
        c.errors.add(
            line,
            "missing_tool_call_id",
            f"{path} is a tool message without tool_call_id; set it to the id of the call "
            "it answers",
            f"{path}.tool_call_id",
        )
    elif type(call_id) is not str or call_id not in ids:
        known = ", ".join(sorted(ids)[:5]) or "none"
        c.errors.add(
            line,
            "unknown_tool_call_id",
            f"{path}.tool_call_id {call_id!r} answers no earlier tool call (ids so far: {known})",
            f"{path}.tool_call_id",
        )
