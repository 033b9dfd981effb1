"""Rules for `tools`, legacy `functions` and `parallel_tool_calls` on an example."""

from __future__ import annotations

from typing import Any

import orjson

from ftq.shared.datasets.validation.context import Checks, Definitions
from ftq.shared.datasets.validation.messages import NAME

_CACHE_LIMIT = 1024


def check_declarations(
    c: Checks, obj: dict[str, Any], line: int, prefix: str = ""
) -> tuple[frozenset[str] | None, int]:
    """Check the example's function declarations: the declared names (None if none) and tokens."""
    if "parallel_tool_calls" in obj and type(obj["parallel_tool_calls"]) is not bool:
        c.errors.add(
            line,
            "invalid_parallel_tool_calls",
            f"{prefix}parallel_tool_calls must be true or false",
            f"{prefix}parallel_tool_calls",
        )
    declared: frozenset[str] | None = None
    tokens = 0
    for key in ("tools", "functions"):
        if obj.get(key) is None:
            continue
        names, n = _definitions(c, obj[key], line, key, prefix)
        declared = names if declared is None else declared | names
        tokens += n
    return declared, tokens


def _definitions(
    c: Checks, value: Any, line: int, key: str, prefix: str
) -> tuple[frozenset[str], int]:
    """Check one declaration list, remembering the verdict: the same list repeats per example."""
    code = f"invalid_{key}"
    if type(value) is not list:
        c.errors.add(
            line, code, f"{prefix}{key} must be a list of function definitions", f"{prefix}{key}"
        )
        return frozenset(), 0
    cache_key = f"{prefix}{key}".encode() + b"\0" + orjson.dumps(value)
    verdict = c.definitions.get(cache_key)
    if verdict is None:
        if len(c.definitions) >= _CACHE_LIMIT:
            c.definitions.clear()
        verdict = c.definitions[cache_key] = _judge(c, value, key, prefix)
    names, tokens, findings = verdict
    for code_, message, param in findings:
        c.errors.add(line, code_, message, param)
    return names, tokens


def _judge(c: Checks, value: list[Any], key: str, prefix: str) -> Definitions:
    """Names, tokens and findings of a declaration list."""
    code = f"invalid_{key}"
    findings: list[tuple[str, str, str]] = []
    functions: list[dict[str, Any]] = []
    for k, item in enumerate(value):
        at = f"{prefix}{key}[{k}]"
        fn = _function_of(item, key)
        if fn is None:
            shape = (
                "{type: function, function: {name, description, parameters}}"
                if key == "tools"
                else "{name, description, parameters}"
            )
            findings.append((code, f"{at} must be {shape}", at))
            continue
        at = f"{at}.function" if key == "tools" else at
        findings.extend(_function_findings(fn, functions, code, at))
        functions.append(fn)
    names = frozenset(f["name"] for f in functions if isinstance(f.get("name"), str))
    return names, c.counter.definitions(functions), tuple(findings)


def _function_of(item: Any, key: str) -> dict[str, Any] | None:
    """The function definition inside a `tools` or `functions` entry, if well shaped."""
    if type(item) is not dict:
        return None
    if key == "functions":
        return item
    fn = item.get("function")
    return fn if item.get("type") == "function" and type(fn) is dict else None


def _function_findings(
    fn: dict[str, Any], earlier: list[dict[str, Any]], code: str, at: str
) -> list[tuple[str, str, str]]:
    """Problems with one function definition's name, description and parameters."""
    found: list[tuple[str, str, str]] = []
    name = fn.get("name")
    if type(name) is not str or not NAME.fullmatch(name):
        found.append(
            (code, f"{at}.name must be 1-64 letters, digits, underscores or dashes", f"{at}.name")
        )
    elif any(f.get("name") == name for f in earlier):
        found.append((code, f"{at}.name {name!r} is declared twice", f"{at}.name"))
    if "description" in fn and type(fn["description"]) is not str:
        found.append((code, f"{at}.description must be a string", f"{at}.description"))
    if fn.get("parameters") is not None and type(fn["parameters"]) is not dict:
        found.append((code, f"{at}.parameters must be a JSON Schema object", f"{at}.parameters"))
    return found
