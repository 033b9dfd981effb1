"""Token counts pinned against values computed here, independently, with tiktoken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from ftq.shared.datasets.tokens import get_encoding
from ftq.shared.datasets.validation import validate_file
from tests.unit._data import require_shared_data


def cookbook_messages(messages: list[dict[str, Any]], enc: tiktoken.Encoding) -> int:
    """OpenAI cookbook's num_tokens_from_messages (string values only)."""
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(enc.encode(value))
            if key == "name":
                n += 1
    return n + 3


def cookbook_tools(functions: list[dict[str, Any]], enc: tiktoken.Encoding, init: int) -> int:
    """OpenAI cookbook's num_tokens_for_tools."""
    n = 0
    for tool in functions:
        function = tool["function"]
        n += init
        n += len(enc.encode(f"{function['name']}:{function['description'].rstrip('.')}"))
        properties = function["parameters"]["properties"]
        if properties:
            n += 3
            for key, spec in properties.items():
                n += 3
                if "enum" in spec:
                    n -= 3
                    for item in spec["enum"]:
                        n += 3 + len(enc.encode(item))
                description = spec.get("description", "").rstrip(".")
                n += len(enc.encode(f"{key}:{spec['type']}:{description}"))
    return n + 12 if functions else n


def write(tmp_path: Path, examples: list[dict[str, Any]]) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return path


CHATS = [
    [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hello world"}],
    [
        {"role": "system", "content": "You answer in French."},
        {"role": "user", "name": "alice", "content": "Bonjour, ça va ?"},
        {"role": "assistant", "content": "Très bien, merci ! Et vous ? 🙂"},
    ],
    [
        {"role": "system", "content": "Count."},
        {"role": "user", "content": "1 2 3"},
        {"role": "assistant", "content": "4 5 6", "weight": 0},
        {"role": "user", "content": "more"},
        {"role": "assistant", "content": "7 8 9\n\n10", "weight": 1},
    ],
]


@pytest.mark.parametrize(
    ("model", "encoding"), [("gpt-4o-mini", "o200k_base"), ("gpt-3.5-turbo-0125", "cl100k_base")]
)
@pytest.mark.parametrize("messages", CHATS, ids=["plain", "name", "weights"])
def test_chat_counts_match_the_cookbook(
    tmp_path: Path, model: str, encoding: str, messages: list[dict[str, Any]]
) -> None:
    enc = get_encoding(encoding)
    report = validate_file(write(tmp_path, [{"messages": messages}]), model=model)
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
    assert report.tokens.total.sum == cookbook_messages(plain, enc)
    assistant = sum(len(enc.encode(m["content"])) for m in messages if m["role"] == "assistant")
    assert report.tokens.assistant.sum == assistant


def test_literal_pin(tmp_path: Path) -> None:
    # 2 messages x (3 + 1 role token + 2 content tokens) + 3 priming; o200k "hello world" = 2.
    enc = get_encoding("o200k_base")
    assert len(enc.encode("user")) == len(enc.encode("assistant")) == 1
    assert len(enc.encode("hello world")) == 2
    report = validate_file(write(tmp_path, [{"messages": CHATS[0]}]))
    assert report.tokens.total.sum == 15


def test_tools_and_tool_calls(tmp_path: Path) -> None:
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "The city."},
                        "unit": {"type": "string", "description": "Unit", "enum": ["c", "f"]},
                    },
                },
            },
        }
    ]
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "4 C"},
        {"role": "assistant", "content": "It is 4 C."},
    ]
    report = validate_file(write(tmp_path, [{"messages": messages, "tools": tools}]))
    enc = get_encoding("o200k_base")
    text_only = [
        {"role": m["role"], "content": m["content"]} for m in messages if m["content"] is not None
    ]
    calls = 3 + len(enc.encode("get_weather")) + len(enc.encode('{"city": "Oslo"}'))
    call_message = 3 + len(enc.encode("assistant"))
    expected = cookbook_messages(text_only, enc) + call_message + calls
    assert report.tokens.total.sum == expected + cookbook_tools(tools, enc, init=7)
    assert report.tokens.assistant.sum == calls + len(enc.encode("It is 4 C."))


def test_preference_counts(tmp_path: Path) -> None:
    enc = get_encoding("o200k_base")
    prompt = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi!"}]
    good, bad = "Hello, friend.", "What do you want?"
    report = validate_file(
        write(
            tmp_path,
            [
                {
                    "input": {"messages": prompt},
                    "preferred_output": [{"role": "assistant", "content": good}],
                    "non_preferred_output": [{"role": "assistant", "content": bad}],
                }
            ],
        )
    )
    per_output = 3 + len(enc.encode("assistant"))
    expected = (
        cookbook_messages(prompt, enc)
        + 2 * per_output
        + len(enc.encode(good))
        + len(enc.encode(bad))
    )
    assert report.tokens.total.sum == expected
    assert report.tokens.assistant.sum == len(enc.encode(good))


def test_completion_counts(tmp_path: Path) -> None:
    enc = get_encoding("cl100k_base")
    report = validate_file(
        write(tmp_path, [{"prompt": "Q: 2+2?\nA:", "completion": " 4\n"}]), model="babbage-002"
    )
    assert report.tokens.total.sum == len(enc.encode("Q: 2+2?\nA:")) + len(enc.encode(" 4\n"))


def test_gsm8k_counts_match_the_cookbook() -> None:
    path = require_shared_data() / "gsm8k_chat_train.jsonl"
    enc = get_encoding("o200k_base")
    with open(path, encoding="utf-8") as f:
        expected = sorted(cookbook_messages(json.loads(line)["messages"], enc) for line in f)
    report = validate_file(path)
    assert report.tokens.total.sum == sum(expected)
    assert (report.tokens.total.min, report.tokens.total.max) == (expected[0], expected[-1])
    assert report.billing_tokens_per_epoch == sum(expected)


def test_stock_toolcall_counts_tools_per_example(tmp_path: Path) -> None:
    source = require_shared_data() / "stock_toolcall_training.jsonl"
    with open(source, encoding="utf-8") as f:
        first = json.loads(f.readline())
    enc = get_encoding("o200k_base")
    messages = [m for m in first["messages"] if m.get("content") is not None]
    (call,) = first["messages"][-1]["tool_calls"]
    call_tokens = (
        3
        + len(enc.encode("assistant"))
        + 3
        + len(enc.encode(call["function"]["name"]))
        + len(enc.encode(call["function"]["arguments"]))
    )
    tools = cookbook_tools(first["tools"], enc, 7)
    expected = cookbook_messages(messages, enc) + call_tokens + tools
    report = validate_file(write(tmp_path, [first]))
    assert report.tokens.total.sum == expected
