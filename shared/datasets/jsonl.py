"""Upload-time structural check: every line UTF-8 and a JSON object, line numbers given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from ftq.shared.errors import Unprocessable

MAX_REPORTED = 5
# Far above any example a provider accepts, and the most of one line the API process holds.
MAX_LINE_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


def find_structural_errors(path: Path, limit: int = MAX_REPORTED) -> tuple[int, list[str]]:
    """Count non-blank lines and describe the first `limit` that are not JSON objects."""
    problems: list[str] = []
    examples = number = 0
    with path.open("rb") as handle:
        for lines, ending in _line_batches(handle):
            for raw in lines:
                number += 1
                if raw is not None and _is_object(raw):  # the common line: one parse
                    examples += 1
                    continue
                if raw is not None and not raw.strip():
                    continue
                examples += 1
                # Described as read, ending included: the parser's column depends on it.
                problem = _line_problem(None if raw is None else raw + ending)
                if problem and len(problems) < limit:
                    problems.append(f"line {number}: {problem}")
    return examples, problems


def _is_object(raw: bytes) -> bool:
    try:
        return type(orjson.loads(raw)) is dict
    except orjson.JSONDecodeError:
        return False


def _line_batches(handle: BinaryIO) -> Iterator[tuple[list[bytes | None], bytes]]:
    """The file's lines a read at a time, without their ending, and that ending (the last line
    may have none); None for a line longer than MAX_LINE_BYTES (skipped, never held whole)."""
    carry = b""  # the start of a line the last read cut, at most MAX_LINE_BYTES
    skipping = False  # inside a line already known to be too long
    while chunk := handle.read(_READ_CHUNK):
        parts = chunk.split(b"\n")
        batch: list[bytes | None] = []
        for part in parts[:-1]:
            line, carry = carry + part if carry else part, b""
            batch.append(None if skipping or len(line) > MAX_LINE_BYTES else line)
            skipping = False
        if not skipping:
            carry += parts[-1]
            if len(carry) > MAX_LINE_BYTES:
                carry, skipping = b"", True
        yield batch, b"\n"
    if skipping or carry:
        yield [None if skipping else carry], b""


def _line_problem(raw: bytes | None) -> str | None:
    if raw is None:
        return f"longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB"
    try:
        # The validator's parser: nesting deeper than 1024 is a decode error, not a crash. It
        # refuses bad UTF-8 too, so the decode that names the byte runs only for a refused line.
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _not_utf8(raw) or f"not JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, expected an object"
    return None


def ensure_json_lines(path: Path) -> int:
    """Raise a 422 naming the bad lines unless the file is non-empty JSON lines."""
    examples, problems = find_structural_errors(path)
    if problems:
        raise Unprocessable(
            "file is not JSON lines: " + "; ".join(problems), param="file", code="invalid_jsonl"
        )
    if examples == 0:
        raise Unprocessable(
            "file has no examples (only blank lines)", param="file", code="empty_file"
        )
    return examples


def _not_utf8(raw: bytes) -> str | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    return None
