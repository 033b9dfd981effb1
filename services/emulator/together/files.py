"""Files uploaded to the emulator's Together AI API (a test double), and their format check.

An upload is announced (`POST /files`: name, purpose, type, sha256), its bytes arrive by the
signed-URL PUT, and `POST /files/{id}/preprocess` checks the checksum and the format: every line
one of Together's formats, the same on every line (conversation `messages` with an assistant
turn, instruction `prompt`/`completion`, general `text`, or preference `input`/
`preferred_output`/`non_preferred_output`). Callers hold the state lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ftq.services.emulator import datafile
from ftq.services.emulator.together.shapes import file_not_found, tokens_of

KINDS = {"chat": "CONVERSATION", "completion": "INSTRUCTION", "preference": "PREFERENCE"}


@dataclass
class TogetherFile:
    """One file and what preprocessing found."""

    id: str
    filename: str
    purpose: str
    file_type: str
    checksum: str | None
    created_at: int
    content: bytes | None = None
    status: str = "PENDING"
    report: dict[str, Any] | None = None
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def dataset_format(self) -> str | None:
        """CONVERSATION, INSTRUCTION, GENERAL or PREFERENCE once valid, else None."""
        if self.report is None or not self.report["valid"]:
            return None
        return str(self.report["dataset_format"])

    @property
    def n_examples(self) -> int:
        """Non-blank lines."""
        return sum(1 for line in (self.content or b"").splitlines() if line.strip())

    def to_dict(self) -> dict[str, Any]:
        """Together's `FileResponse`."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "created_at": self.created_at,
            "filename": self.filename,
            "bytes": len(self.content or b""),
            "purpose": self.purpose,
            "FileType": self.file_type,
            "Processed": self.status == "COMPLETED",
            "processing_status": self.status,
            "LineCount": self.n_examples,
        }
        if self.report is not None:
            body["validation_report"] = dict(self.report)
        return body

    def preprocess(self) -> None:
        """Check checksum and format; the outcome is kept in `status` and `report`."""
        content = self.content or b""
        error = self._checksum_error(content) or None
        dataset_format, format_error = detect_format(content)
        error = error or format_error
        self.status = "INVALID_FORMAT" if error else "COMPLETED"
        self.report = {"valid": error is None, "file_id": self.id, "nlines": self.n_examples}
        if error:
            self.report.update(error=error, error_type="INVALID_FORMAT")
        else:
            self.report["dataset_format"] = dataset_format
            self.answers = datafile.analyze(content).answers

    def _checksum_error(self, content: bytes) -> str:
        """A message when the announced sha256 does not match the bytes received."""
        if self.checksum and hashlib.sha256(content).hexdigest() != self.checksum:
            return "The uploaded bytes do not match the announced sha256 checksum."
        return ""

    @property
    def tokens(self) -> int:
        """Rough token count of the content."""
        return tokens_of(self.content or b"")


def detect_format(content: bytes) -> tuple[str, str | None]:
    """(dataset format, None) or ("", why the file is not one of Together's formats)."""
    if not content.strip():
        return "", "The file is empty."
    formats: set[str] = set()
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        kind = _line_format(raw)
        if kind is None:
            return (
                "",
                f"Line {number} is not in a supported format "
                "(messages, prompt/completion, text or preference).",
            )
        formats.add(kind)
        if len(formats) > 1:
            return "", f"Line {number} mixes dataset formats: {sorted(formats)}."
    return formats.pop(), None


def _line_format(raw: bytes) -> str | None:
    """The format of one JSON line, or None."""
    try:
        example = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    kind = datafile.classify(example)
    if kind in KINDS:
        return KINDS[kind]
    if isinstance(example, dict) and isinstance(example.get("text"), str):
        return "GENERAL"
    return None


class TogetherFiles:
    """Files in upload order."""

    def __init__(self) -> None:
        self.files: dict[str, TogetherFile] = {}

    def add(self, file: TogetherFile) -> TogetherFile:
        """Keep a file."""
        self.files[file.id] = file
        return file

    def get(self, file_id: str) -> TogetherFile:
        """One file, or the 404."""
        if file_id not in self.files:
            raise file_not_found(file_id)
        return self.files[file_id]

    def find(self, file_id: str) -> TogetherFile | None:
        """One file, or None."""
        return self.files.get(file_id)

    def delete(self, file_id: str) -> dict[str, Any]:
        """Forget a file."""
        self.get(file_id)
        del self.files[file_id]
        return {"id": file_id, "deleted": True}

    def listing(self) -> dict[str, Any]:
        """`{"data": [...]}`, newest first."""
        return {"data": [f.to_dict() for f in reversed(self.files.values())]}

    def __len__(self) -> int:
        """How many files exist."""
        return len(self.files)
