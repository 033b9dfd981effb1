"""Evals records to chat examples, and the seeded validation split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ftq.shared.datasets.convert import ConversionError, evals_record_to_chat, evals_to_chat, split

USER = {"role": "user", "content": "Which is it?"}


@pytest.mark.parametrize(
    ("record", "messages"),
    [
        ({"input": [USER], "ideal": "A"}, [USER, {"role": "assistant", "content": "A"}]),
        (
            {"input": "2+2?", "ideal": ["4", "four"]},
            [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        ),
    ],
)
def test_record_conversion(record: dict[str, object], messages: list[object]) -> None:
    assert evals_record_to_chat(record) == {"messages": messages}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1], "object"),
        ({"input": [], "ideal": "A"}, "input"),
        ({"input": [USER], "ideal": ""}, "ideal"),
        ({"input": [USER]}, "ideal"),
    ],
)
def test_record_conversion_refuses(record: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        evals_record_to_chat(record)


def test_file_conversion_streams_and_keeps_unicode(tmp_path: Path) -> None:
    src = tmp_path / "evals.jsonl"
    records = [
        {"input": [{"role": "user", "content": f"Frage {i}: Grüße?"}], "ideal": "Ja"}
        for i in range(5)
    ]
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    result = evals_to_chat(src, tmp_path / "chat.jsonl")
    assert (result.converted, result.blank) == (5, 1)
    out = (tmp_path / "chat.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(out[3])["messages"][0]["content"] == "Frage 3: Grüße?"
    assert "Grüße" in out[0]


def test_bad_lines_leave_nothing_behind(tmp_path: Path) -> None:
    src = tmp_path / "evals.jsonl"
    src.write_text('{"input": [], "ideal": "A"}\nnope\n{"input": "q", "ideal": "A"}\n')
    dst = tmp_path / "chat.jsonl"
    dst.write_text("previous\n")
    with pytest.raises(ConversionError) as caught:
        evals_to_chat(src, dst)
    assert [line for line, _ in caught.value.problems] == [1, 2]
    assert caught.value.total == 2
    assert dst.read_text() == "previous\n"
    assert list(tmp_path.iterdir()) == [src, dst] or set(tmp_path.iterdir()) == {src, dst}


def _numbered(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "all.jsonl"
    src.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(n)))
    return src


def test_split_is_exact_seeded_and_complete(tmp_path: Path) -> None:
    src = _numbered(tmp_path, 1000)
    train, valid = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    result = split(src, train, valid, 0.1, seed=42)
    assert (result.n_train, result.n_valid) == (900, 100)
    lines = train.read_text().splitlines() + valid.read_text().splitlines()
    assert Counter(lines) == Counter(src.read_text().splitlines())
    first = valid.read_text()
    split(src, train, valid, 0.1, seed=42)
    assert valid.read_text() == first
    split(src, train, valid, 0.1, seed=7)
    assert valid.read_text() != first


def test_split_keeps_order_and_skips_blank_lines(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    src.write_text('{"i": 0}\n\n{"i": 1}\n{"i": 2}\n{"i": 3}')
    train, valid = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    result = split(src, train, valid, 0.25, seed=1)
    assert (result.n_train, result.n_valid) == (3, 1)
    numbers = [json.loads(line)["i"] for line in train.read_text().splitlines()]
    assert numbers == sorted(numbers)
    assert valid.read_text().endswith("\n")


@pytest.mark.parametrize("fraction", [0, 1, -0.5, 1.5])
def test_split_fraction_bounds(tmp_path: Path, fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        split(_numbered(tmp_path, 10), tmp_path / "t", tmp_path / "v", fraction, 1)


def test_split_needs_two_examples(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        split(_numbered(tmp_path, 1), tmp_path / "t", tmp_path / "v", 0.5, 1)


def test_split_always_leaves_both_sides(tmp_path: Path) -> None:
    result = split(_numbered(tmp_path, 3), tmp_path / "t", tmp_path / "v", 0.01, 1)
    assert (result.n_train, result.n_valid) == (2, 1)
    result = split(_numbered(tmp_path, 3), tmp_path / "t", tmp_path / "v", 0.99, 1)
    assert (result.n_train, result.n_valid) == (1, 2)
