"""Validating the lines of one byte range of a file: the work each worker process does."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ftq.shared.datasets.validation.chat import Counted, check_chat, check_evals
from ftq.shared.datasets.validation.completion import check_completion
from ftq.shared.datasets.validation.context import Checks, json_type
from ftq.shared.datasets.validation.counting import counter_for
from ftq.shared.datasets.validation.findings import FindingLog
from ftq.shared.datasets.validation.preference import check_preference
from ftq.shared.datasets.validation.reader import ByteRange, iter_lines
from ftq.shared.datasets.validation.stats import Tally

Checker = Callable[[Checks, dict[str, Any], int], Counted | None]
CHECKERS: dict[str, Checker] = {
    "chat": check_chat,
    "preference": check_preference,
    "completion": check_completion,
    "evals": check_evals,
}
BOM = b"\xef\xbb\xbf"
EXPECTED_SHAPES = (
    "messages (chat), input + preferred_output + non_preferred_output (preference), "
    "prompt + completion (completion) or input + ideal (evals)"
)


def detect_format(obj: dict[str, Any]) -> str | None:
    """The dataset format one parsed line is written in, if any."""
    if "messages" in obj:
        return "chat"
    if "preferred_output" in obj or "non_preferred_output" in obj:
        return "preference"
    if "input" in obj and "ideal" in obj:
        return "evals"
    if "prompt" in obj or "completion" in obj:
        return "completion"
    return None


def digest(raw: bytes) -> int:
    """A 63-bit digest of a line, equal in every process (SQLite integers are signed)."""
    return int.from_bytes(hashlib.sha1(raw, usedforsecurity=False).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class RangeConfig:
    """What a worker needs to check its range: everything is plain data, so it pickles."""

    path: str
    encoding: str
    context: int | None
    purpose: str
    file_format: str | None
    vision: bool = False


@dataclass
class RangeResult:
    """Findings, statistics and line digests of one range; lines are relative to the range."""

    index: int
    n_lines: int = 0
    n_examples: int = 0
    errors: FindingLog = field(default_factory=FindingLog)
    warnings: FindingLog = field(default_factory=FindingLog)
    tally: Tally = field(default_factory=Tally)
    digests: array[int] = field(default_factory=lambda: array("q"))
    digest_lines: array[int] = field(default_factory=lambda: array("q"))


class RangeValidator:
    """Checks lines one by one, accumulating into a `RangeResult`."""

    def __init__(self, config: RangeConfig, rng: ByteRange) -> None:
        self.config = config
        self.at_file_start = rng.start == 0
        self.checks = Checks(
            counter_for(config.encoding), config.purpose, config.context, config.vision
        )
        self.result = RangeResult(
            rng.index, errors=self.checks.errors, warnings=self.checks.warnings
        )
        self.expected = config.file_format

    def line(self, raw: bytes, ln: int) -> None:
        """Check one line (without its newline); `ln` is its number within the range."""
        if not raw or raw.isspace():
            self.checks.warnings.add(ln, "blank_line", "empty line, skipped", None)
            return
        self.result.n_examples += 1
        if ln == 1 and self.at_file_start and raw.startswith(BOM):
            self.checks.errors.add(
                ln,
                "utf8_bom",
                "the file starts with a UTF-8 byte-order mark; save it as UTF-8 without BOM",
                None,
            )
            raw = raw[3:]
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._unparsable(raw, ln, exc)
            return
        if type(obj) is not dict:
            self._not_object(obj, ln)
            return
        self.result.digests.append(digest(raw))
        self.result.digest_lines.append(ln)
        checker = self._checker(obj, ln)
        counted = checker(self.checks, obj, ln) if checker else None
        if counted is not None:
            self.result.tally.add(*counted)

    def _checker(self, obj: dict[str, Any], ln: int) -> Checker | None:
        """The rules for this line, or None after reporting a format problem."""
        found = detect_format(obj)
        expected = self.expected
        if expected is None or found is None:
            fmt = expected or found
            if fmt is None:
                keys = ", ".join(sorted(obj)[:8]) or "none"
                self.checks.errors.add(
                    ln,
                    "unknown_format",
                    f"the object matches no dataset format: expected "
                    f"{EXPECTED_SHAPES}; found keys: {keys}",
                    None,
                )
                return None
            return CHECKERS[fmt]
        if found != expected:
            self.checks.errors.add(
                ln,
                "mixed_formats",
                f"this line is a {found} example but the file is {expected} "
                "(from its first examples); one file holds one format",
                None,
            )
            return None
        return CHECKERS[found]

    def _unparsable(self, raw: bytes, ln: int, exc: orjson.JSONDecodeError) -> None:
        """Report a line that is not UTF-8 or not JSON, with a hint at the usual cause."""
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            self.checks.errors.add(
                ln,
                "invalid_utf8",
                f"byte 0x{raw[bad.start]:02x} at position {bad.start + 1} is not UTF-8; "
                "re-save the file as UTF-8 (it may be Latin-1 or Windows-1252)",
                None,
            )
            return
        self.checks.errors.add(
            ln,
            "invalid_json",
            f"not valid JSON: {exc.msg} at character {exc.pos + 1}{_json_hint(raw)}",
            None,
        )

    def _not_object(self, obj: Any, ln: int) -> None:
        """Report a line that is JSON but not an object."""
        hint = (
            "; JSONL needs one object per line, not one JSON array" if isinstance(obj, list) else ""
        )
        self.checks.errors.add(
            ln, "data_type", f"the line is {json_type(obj)}, not a JSON object{hint}", None
        )


def _json_hint(raw: bytes) -> str:
    """Why a line that fails to parse probably does."""
    text = raw.strip()
    if text.startswith(b"{'") or b"': " in text[:200]:
        return (
            "; it looks like a Python dict printed with print() or str(): JSON needs "
            "double quotes, so write each example with json.dumps"
        )
    if text in (b"{", b"}", b"[", b"]", b"},", b"],") or text.endswith((b"{", b"[")):
        return "; it looks like pretty-printed JSON: JSONL needs each example on one line"
    return ""


def validate_range(config: RangeConfig, rng: ByteRange) -> RangeResult:
    """Check every line of one range of the file."""
    validator = RangeValidator(config, rng)
    check = validator.line
    ln = 0
    for ln, raw in enumerate(iter_lines(Path(config.path), rng.start, rng.end), 1):
        check(raw, ln)
    validator.result.n_lines = ln
    return validator.result
