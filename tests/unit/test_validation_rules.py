"""Every error and warning code, each from a minimal bad line next to good ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftq.shared.datasets.validation import ERRORS, WARNINGS, ValidationReport, validate_file

SYSTEM = {"role": "system", "content": "You are terse."}
USER = {"role": "user", "content": "What is 2 + 2?"}
ASSISTANT = {"role": "assistant", "content": "4"}
GOOD = {"messages": [SYSTEM, USER, ASSISTANT]}
CALL = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2}'}}
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
PREFERENCE = {
    "input": {"messages": [USER]},
    "preferred_output": [{"role": "assistant", "content": "4"}],
    "non_preferred_output": [{"role": "assistant", "content": "5"}],
}
LONG_TEXT = "tokens " * 5000


def chat(*messages: Any, **extra: Any) -> dict[str, Any]:
    """A chat example from messages."""
    return {"messages": list(messages), **extra}


def write(path: Path, lines: list[Any]) -> Path:
    """JSONL from objects (dumped) and bytes (written as they are)."""
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else json.dumps(line).encode())
            f.write(b"\n")
    return path


def validate(
    tmp_path: Path, bad: Any, *, good: Any = GOOD, n_good: int = 10, **kwargs: Any
) -> ValidationReport:
    """Validate a file of `n_good` good examples with `bad` on line 2."""
    lines = [good] * n_good
    lines.insert(1, bad)
    return validate_file(write(tmp_path / "data.jsonl", lines), **kwargs)


def finding(report: ValidationReport, code: str, warning: bool = False) -> tuple[Any, Any]:
    """(line, param) of the first finding with `code`."""
    items = (report.warnings if warning else report.errors).items
    found = [f for f in items if f.code == code]
    assert found, f"{code} not reported; errors: {report.errors.by_code}"
    return found[0].line, found[0].param


# (code, bad line, expected param, validate_file options); the bad line is line 2.
LINE_ERRORS: list[tuple[str, Any, str | None, dict[str, Any]]] = [
    ("invalid_utf8", b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', None, {}),
    ("invalid_json", b"{'messages': [{'role': 'user', 'content': 'hi'}]}", None, {}),
    ("data_type", b"[1, 2]", None, {}),
    ("mixed_formats", {"prompt": "p", "completion": "c"}, None, {}),
    ("missing_messages_list", {"messages": []}, "messages", {}),
    ("message_data_type", chat(SYSTEM, "hi", ASSISTANT), "messages[1]", {}),
    ("message_missing_key", chat({"content": "hi"}, ASSISTANT), "messages[0].role", {}),
    ("message_unrecognized_key", chat({**USER, "lang": "en"}, ASSISTANT), "messages[0].lang", {}),
    (
        "unrecognized_role",
        chat({"role": "developer", "content": "x"}, USER, ASSISTANT),
        "messages[0].role",
        {},
    ),
    (
        "missing_content",
        chat({"role": "user", "content": ""}, ASSISTANT),
        "messages[0].content",
        {},
    ),
    (
        "invalid_content",
        chat({"role": "user", "content": 42}, ASSISTANT),
        "messages[0].content",
        {},
    ),
    ("invalid_name", chat({**USER, "name": "Ann Lee!"}, ASSISTANT), "messages[0].name", {}),
    ("example_missing_assistant_message", chat(SYSTEM, USER), "messages", {}),
    ("invalid_weight", chat(USER, {**ASSISTANT, "weight": 2}), "messages[1].weight", {}),
    ("key_not_allowed_for_role", chat({**USER, "weight": 1}, ASSISTANT), "messages[0].weight", {}),
    (
        "invalid_tool_call",
        chat(USER, {"role": "assistant", "tool_calls": [{**CALL, "type": "code"}]}),
        "messages[1].tool_calls[0].type",
        {},
    ),
    (
        "invalid_tool_arguments",
        chat(
            USER,
            {
                "role": "assistant",
                "tool_calls": [{**CALL, "function": {"name": "add", "arguments": "{a: 2"}}],
            },
        ),
        "messages[1].tool_calls[0].function.arguments",
        {},
    ),
    (
        "duplicate_tool_call_id",
        chat(USER, {"role": "assistant", "tool_calls": [CALL, CALL]}),
        "messages[1].tool_calls[1].id",
        {},
    ),
    (
        "missing_tool_call_id",
        chat(
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "content": "4"},
            ASSISTANT,
        ),
        "messages[2].tool_call_id",
        {},
    ),
    (
        "unknown_tool_call_id",
        chat(
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_9", "content": "4"},
            ASSISTANT,
        ),
        "messages[2].tool_call_id",
        {},
    ),
    (
        "invalid_function_call",
        chat(USER, {"role": "assistant", "function_call": {"name": 3, "arguments": "{}"}}),
        "messages[1].function_call.name",
        {},
    ),
    ("invalid_tools", chat(USER, ASSISTANT, tools=[{"type": "function"}]), "tools[0]", {}),
    (
        "invalid_functions",
        chat(USER, ASSISTANT, functions=[{"name": "add two"}]),
        "functions[0].name",
        {},
    ),
    (
        "invalid_parallel_tool_calls",
        chat(USER, ASSISTANT, parallel_tool_calls="yes"),
        "parallel_tool_calls",
        {},
    ),
    (
        "example_too_long",
        chat(USER, {"role": "assistant", "content": LONG_TEXT}),
        None,
        {"model": "gpt-3.5-turbo-0613"},
    ),
]


@pytest.mark.parametrize(
    ("code", "bad", "param", "options"), LINE_ERRORS, ids=[case[0] for case in LINE_ERRORS]
)
def test_chat_error_codes(
    tmp_path: Path, code: str, bad: Any, param: str | None, options: dict[str, Any]
) -> None:
    report = validate(tmp_path, bad, **options)
    assert not report.ok
    assert finding(report, code) == (2, param)
    assert set(report.errors.by_code) == {code}, report.errors.by_code
    assert report.n_examples == 11


PREFERENCE_ERRORS = [
    ("missing_input", {**PREFERENCE, "input": {"tools": []}}, "input"),
    (
        "missing_preference_output",
        {k: v for k, v in PREFERENCE.items() if k != "preferred_output"},
        "preferred_output",
    ),
    (
        "invalid_preference_output",
        {**PREFERENCE, "non_preferred_output": [{"role": "user", "content": "5"}]},
        "non_preferred_output",
    ),
]


@pytest.mark.parametrize(
    ("code", "bad", "param"), PREFERENCE_ERRORS, ids=[case[0] for case in PREFERENCE_ERRORS]
)
def test_preference_error_codes(tmp_path: Path, code: str, bad: Any, param: str) -> None:
    report = validate(tmp_path, bad, good=PREFERENCE)
    assert report.format == "preference"
    assert finding(report, code) == (2, param)
    assert set(report.errors.by_code) == {code}


COMPLETION = {"prompt": "2 + 2 =", "completion": " 4"}


@pytest.mark.parametrize(
    ("code", "bad", "param"),
    [
        ("missing_prompt", {"completion": " 4"}, "prompt"),
        ("missing_completion", {"prompt": "2 + 2 =", "completion": ""}, "completion"),
    ],
)
def test_completion_error_codes(tmp_path: Path, code: str, bad: Any, param: str) -> None:
    report = validate(tmp_path, bad, good=COMPLETION, model="babbage-002")
    assert report.format == "completion"
    assert finding(report, code) == (2, param)
    assert set(report.errors.by_code) == {code}


def test_eval_missing_reference(tmp_path: Path) -> None:
    report = validate(tmp_path, chat(SYSTEM, USER), purpose="eval", n_good=3)
    assert finding(report, "eval_missing_reference") == (2, "messages")
    assert set(report.errors.by_code) == {"eval_missing_reference"}


def test_invalid_ideal(tmp_path: Path) -> None:
    good = {"input": [SYSTEM, USER], "ideal": ["4", "four"]}
    report = validate(tmp_path, {"input": [USER], "ideal": 4}, good=good, purpose="eval")
    assert report.format == "evals"
    assert finding(report, "invalid_ideal") == (2, "ideal")
    assert set(report.errors.by_code) == {"invalid_ideal"}


def test_utf8_bom(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + json.dumps(GOOD).encode()] + [GOOD] * 10
    )
    report = validate_file(path)
    assert finding(report, "utf8_bom") == (1, None)
    assert set(report.errors.by_code) == {"utf8_bom"}
    assert report.tokens.total.count == 11


def test_evals_record_not_trainable(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path / "e.jsonl", [{"input": [USER], "ideal": "4"}] * 10))
    assert report.format == "evals"
    assert report.errors.by_code == {"evals_record_not_trainable": 10}
    assert finding(report, "evals_record_not_trainable") == (1, "input")
    assert "ftq convert" in report.errors.items[0].message


def test_evals_line_in_chat_file_is_mixed(tmp_path: Path) -> None:
    report = validate(tmp_path, {"input": [USER], "ideal": "4"})
    assert finding(report, "mixed_formats") == (2, None)


def test_unknown_format(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path / "x.jsonl", [{"text": "hello"}] * 10))
    assert report.format is None
    assert report.errors.by_code == {"unknown_format": 10}
    assert "found keys: text" in report.errors.items[0].message


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"\n\n")
    report = validate_file(tmp_path / "empty.jsonl")
    assert report.errors.by_code == {"empty_file": 1}
    assert report.n_examples == 0 and report.n_lines == 2
    assert report.warnings.by_code == {"blank_line": 2}


def test_too_few_examples_uses_openai_wording(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path / "few.jsonl", [GOOD] * 9))
    assert report.errors.by_code == {"too_few_examples": 1}
    assert report.errors.items[0].line is None
    assert report.errors.items[0].message.startswith(
        "Training file has 9 example(s), but must have at least 10 examples"
    )
    assert report.warnings.by_code.get("few_examples") is None


@pytest.mark.parametrize(
    ("lines", "model", "purpose", "needle"),
    [
        ([COMPLETION], "gpt-4o-mini", "fine-tune", "babbage-002 and davinci-002"),
        ([GOOD], "davinci-002", "fine-tune", "prompt/completion"),
        ([PREFERENCE], "gpt-3.5-turbo-0125", "fine-tune", "DPO"),
        ([PREFERENCE], "gpt-4o-mini", "eval", "eval dataset"),
    ],
)
def test_format_unsupported(
    tmp_path: Path, lines: list[Any], model: str, purpose: str, needle: str
) -> None:
    report = validate_file(write(tmp_path / "f.jsonl", lines * 10), model=model, purpose=purpose)
    assert report.errors.by_code == {"format_unsupported": 1}
    assert needle in report.errors.items[0].message
    assert report.errors.items[0].line is None


def test_valid_baseline_has_no_findings(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path / "good.jsonl", [GOOD] * 60), model="gpt-4o-mini")
    assert report.ok
    assert report.errors.total == 0
    assert report.warnings.by_code == {"duplicate_example": 59}


def test_tool_use_example_is_valid(tmp_path: Path) -> None:
    example = chat(
        SYSTEM,
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4"},
        ASSISTANT,
        tools=TOOLS,
        parallel_tool_calls=False,
    )
    report = validate(tmp_path, example)
    assert report.ok, report.errors


def test_vision_content_parts(tmp_path: Path) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    example = chat(
        {"role": "user", "content": [{"type": "text", "text": "What?"}, image]}, ASSISTANT
    )
    assert validate(tmp_path, example, model="gpt-4o-2024-08-06").ok
    report = validate(tmp_path, example, model="gpt-4o-mini")
    assert finding(report, "invalid_content") == (2, "messages[0].content[1]")


# (code, bad line, options); the warning is on line 2.
LINE_WARNINGS: list[tuple[str, Any, dict[str, Any]]] = [
    ("blank_line", b"", {}),
    ("unrecognized_example_key", {**GOOD, "metadata": {"id": 1}}, {}),
    ("missing_system_message", chat(USER, ASSISTANT), {}),
    ("missing_user_message", chat(SYSTEM, ASSISTANT), {}),
    ("all_assistant_weights_zero", chat(SYSTEM, USER, {**ASSISTANT, "weight": 0}), {}),
    (
        "undeclared_tool",
        chat(
            SYSTEM,
            USER,
            {
                "role": "assistant",
                "tool_calls": [{**CALL, "function": {"name": "mul", "arguments": "{}"}}],
            },
            tools=TOOLS,
        ),
        {},
    ),
    (
        "identical_preference_outputs",
        {**PREFERENCE, "non_preferred_output": PREFERENCE["preferred_output"]},
        {},
    ),
]


@pytest.mark.parametrize(
    ("code", "bad", "options"), LINE_WARNINGS, ids=[case[0] for case in LINE_WARNINGS]
)
def test_warning_codes(tmp_path: Path, code: str, bad: Any, options: dict[str, Any]) -> None:
    good = PREFERENCE if code == "identical_preference_outputs" else GOOD
    report = validate_file(write(tmp_path / "w.jsonl", [good, bad, *[good] * 9]), **options)
    assert report.errors.total == 0, report.errors
    assert finding(report, code, warning=True)[0] == 2


def test_duplicate_example_names_the_first_copy(tmp_path: Path) -> None:
    lines = [chat(SYSTEM, {"role": "user", "content": f"q{i}"}, ASSISTANT) for i in range(12)]
    lines[9] = lines[3]
    report = validate_file(write(tmp_path / "d.jsonl", lines))
    assert report.warnings.by_code == {"duplicate_example": 1, "few_examples": 1}
    dup = next(f for f in report.warnings.items if f.code == "duplicate_example")
    assert (dup.line, dup.message) == (10, "this example repeats line 4 exactly")


def test_context_unknown(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path / "g.jsonl", [GOOD] * 10), model="gpt-4.1")
    assert finding(report, "context_unknown", warning=True) == (None, "model")


def test_every_code_is_tested() -> None:
    tested = {c[0] for c in LINE_ERRORS + PREFERENCE_ERRORS} | {
        "missing_prompt",
        "missing_completion",
        "eval_missing_reference",
        "invalid_ideal",
        "utf8_bom",
        "unknown_format",
        "empty_file",
        "too_few_examples",
        "format_unsupported",
        "evals_record_not_trainable",
    }
    assert tested == set(ERRORS)
    warned = {c[0] for c in LINE_WARNINGS} | {
        "duplicate_example",
        "few_examples",
        "context_unknown",
    }
    assert warned == set(WARNINGS)


def test_findings_are_capped_at_100_but_counted(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path / "bad.jsonl", [b"{nope"] * 150))
    assert report.errors.total == 150
    assert len(report.errors.items) == 100
    assert report.errors.truncated
    assert [f.line for f in report.errors.items[:3]] == [1, 2, 3]
