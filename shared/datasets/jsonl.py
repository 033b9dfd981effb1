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
_SKIP_CHUNK = 1024 * 1024


def find_structural_errors(path: Path, limit: int = MAX_REPORTED) -> tuple[int, list[str]]:
    """Count non-blank lines and describe the first `limit` that are not JSON objects."""
    problems: list[str] = []
    examples = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(_bounded_lines(handle), start=1):
            if raw is not None and not raw.strip():
                continue
            examples += 1
            problem = _line_problem(raw)
            if problem and len(problems) < limit:
                problems.append(f"line {number}: {problem}")
    return examples, problems


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Each line, or None for one longer than MAX_LINE_BYTES (skipped, never held whole)."""
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := handle.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
            pass
        yield None


def _line_problem(raw: bytes | None) -> str | None:
    if raw is None:
        return f"longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    try:
        # The validator's parser: nesting deeper than 1024 is a decode error, not a crash.
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at column {exc.colno})"
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
