"""Streaming conversions: evals records to chat examples, and a seeded validation split."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ftq.shared.datasets.validation.reader import iter_lines

MAX_PROBLEMS = 20


class ConversionError(ValueError):
    """Lines that could not be converted: `problems` holds (line, reason); no output is left."""

    def __init__(self, problems: list[tuple[int, str]], total: int) -> None:
        shown = "; ".join(f"line {line}: {reason}" for line, reason in problems[:5])
        super().__init__(f"{total} line(s) could not be converted: {shown}")
        self.problems = problems
        self.total = total


@dataclass
class ConvertResult:
    """How many records were converted and skipped (blank lines)."""

    converted: int = 0
    blank: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    n_problems: int = 0


@dataclass(frozen=True)
class SplitResult:
    """How many examples went to each side of a split."""

    n_train: int
    n_valid: int


@contextmanager
def _atomic(dst: Path) -> Iterator[BinaryIO]:
    """Write to a temporary file beside `dst` and move it into place only on success."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            yield out
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def evals_record_to_chat(record: Any) -> dict[str, Any]:
    """`{"input": [...] | str, "ideal": str | [str, ...]}` -> `{"messages": input + assistant}`."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    inp, ideal = record.get("input"), record.get("ideal")
    if isinstance(inp, str) and inp:
        messages: list[Any] = [{"role": "user", "content": inp}]
    elif isinstance(inp, list) and inp:
        messages = list(inp)
    else:
        raise ValueError("input must be a non-empty list of messages or a string")
    if isinstance(ideal, list) and ideal:
        ideal = ideal[0]
    if not isinstance(ideal, str) or not ideal:
        raise ValueError("ideal must be a non-empty string or list of strings")
    return {"messages": [*messages, {"role": "assistant", "content": ideal}]}


def evals_to_chat(src: Path, dst: Path) -> ConvertResult:
    """Convert an OpenAI evals file to chat fine-tuning examples, line by line."""
    result = ConvertResult()
    with _atomic(Path(dst)) as out:
        for line, raw in enumerate(iter_lines(Path(src)), 1):
            _convert_line(raw, line, out, result)
        if result.n_problems:
            raise ConversionError(result.problems, result.n_problems)
    return result


def _convert_line(raw: bytes, line: int, out: BinaryIO, result: ConvertResult) -> None:
    """Convert one line into `out`, or note why it cannot be converted."""
    if not raw.strip():
        result.blank += 1
        return
    try:
        chat = evals_record_to_chat(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError) as exc:
        result.n_problems += 1
        if len(result.problems) < MAX_PROBLEMS:
            result.problems.append((line, str(exc)))
        return
    out.write(orjson.dumps(chat) + b"\n")
    result.converted += 1


def split(src: Path, train_dst: Path, valid_dst: Path, fraction: float, seed: int) -> SplitResult:
    """Move exactly round(n * fraction) examples, chosen with `seed`, to the validation file."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must be between 0 and 1 (exclusive)")
    n = sum(1 for raw in iter_lines(Path(src)) if raw.strip())
    if n < 2:
        raise ValueError(f"a split needs at least 2 examples; {src} has {n}")
    wanted = min(n - 1, max(1, round(n * fraction)))
    rng = random.Random(seed)
    seen = chosen = 0
    with _atomic(Path(train_dst)) as train, _atomic(Path(valid_dst)) as valid:
        for raw in iter_lines(Path(src)):
            if not raw.strip():
                continue
            # Selection sampling (Knuth's algorithm S): exactly `wanted` lines, one pass.
            take = rng.random() * (n - seen) < wanted - chosen
            (valid if take else train).write(raw.rstrip(b"\r") + b"\n")
            chosen += take
            seen += 1
    return SplitResult(n_train=n - wanted, n_valid=wanted)
