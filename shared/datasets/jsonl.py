"""Upload-time structural check: every line UTF-8 and a JSON object, line numbers given."""

from __future__ import annotations

import json
from pathlib import Path

from shared.errors import Unprocessable

MAX_REPORTED = 5


def find_structural_errors(path: Path, limit: int = MAX_REPORTED) -> tuple[int, list[str]]:
    """Count non-blank lines and describe the first `limit` that are not JSON objects."""
    problems: list[str] = []
    examples = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            examples += 1
            problem = _line_problem(raw)
            if problem and len(problems) < limit:
                problems.append(f"line {number}: {problem}")
    return examples, problems


def _line_problem(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte {exc.start})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
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
