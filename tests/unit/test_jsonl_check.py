"""The upload-time line check reads a file in blocks and reports exactly what a line-by-line
reading reports: the same example count and the same messages, line numbers and columns."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import orjson
import pytest

from ftq.shared.datasets import jsonl

SMALL_LINE = 40  # bytes: a line longer than this is "too long" in these tests

PIECES = [
    b'{"messages": []}',
    b'{"a": 1}',
    b'  {"b": [1, 2, {"c": null}]}  ',
    b'{"a": 1}\r',
    b"[1, 2]",
    b'"text"',
    b"",
    b"   ",
    b"\r",
    b'{"a":',
    b'{"a" 1}',
    b'{"a": tru',
    b'"x',
    b'{"bad": "\xff\xfe"}',
    b"\xed\xa0\x80",
    b"[" * 1100 + b"]" * 1100,
    b'{"long": "' + b"y" * SMALL_LINE + b'"}',
    b'{"edge": "' + b"z" * (SMALL_LINE - 12) + b'"}',
]


def _reference(path: Path) -> tuple[int, list[str]]:
    """The line-by-line check the block reader replaced (`readline` with a bound)."""
    problems: list[str] = []
    examples = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(_bounded_lines(handle), start=1):
            if raw is not None and not raw.strip():
                continue
            examples += 1
            problem = _line_problem(raw)
            if problem and len(problems) < jsonl.MAX_REPORTED:
                problems.append(f"line {number}: {problem}")
    return examples, problems


def _line_problem(raw: bytes | None) -> str | None:
    """The replaced per-line check: UTF-8 first, then the parser."""
    if raw is None:
        return f"longer than {jsonl.MAX_LINE_BYTES // (1024 * 1024)} MiB"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, expected an object"
    return None


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    while raw := handle.readline(jsonl.MAX_LINE_BYTES + 1):
        if len(raw) <= jsonl.MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := handle.readline(7)) and not rest.endswith(b"\n"):
            pass
        yield None


def _random_file(rng: random.Random) -> bytes:
    lines = [rng.choice(PIECES) for _ in range(rng.randint(0, 12))]
    content = b"\n".join(lines)
    return content + b"\n" if rng.random() < 0.6 else content


@pytest.mark.parametrize("read_size", [1, 3, 16, 64, 1024])
def test_block_reading_reports_what_line_reading_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_size: int
) -> None:
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", SMALL_LINE)
    monkeypatch.setattr(jsonl, "MAX_REPORTED", 100)
    monkeypatch.setattr(jsonl, "_READ_CHUNK", read_size)
    rng = random.Random(read_size)
    path = tmp_path / "f.jsonl"
    for _ in range(400):
        content = _random_file(rng)
        path.write_bytes(content)
        assert jsonl.find_structural_errors(path, limit=100) == _reference(path), content


def test_a_line_at_the_bound_passes_and_one_byte_more_is_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", SMALL_LINE)
    monkeypatch.setattr(jsonl, "_READ_CHUNK", 8)
    at_bound = b'{"k": "' + b"v" * (SMALL_LINE - 9) + b'"}'
    assert len(at_bound) == SMALL_LINE
    path = tmp_path / "f.jsonl"
    path.write_bytes(at_bound + b"\n" + at_bound[:-2] + b'v"}\n{"ok": 1}')
    assert jsonl.find_structural_errors(path) == (3, ["line 2: longer than 0 MiB"])
