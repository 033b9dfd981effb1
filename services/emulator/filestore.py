"""Files held by the emulator (a test double of OpenAI's Files API); callers hold the state lock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftq.services.emulator.errors import file_not_found
from ftq.services.emulator.pagination import page, with_ids

BATCH_EXPIRY_S = 30 * 24 * 3600


@dataclass
class StoredFile:
    """An uploaded (or result) file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    expires_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `file` object (expires_at only when the file expires)."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }
        if self.expires_at is not None:
            body["expires_at"] = self.expires_at
        return body


class FileStore:
    """Files in upload order."""

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}

    def add(
        self,
        file_id: str,
        filename: str,
        purpose: str,
        content: bytes,
        now: int,
        expires_after: int | None = None,
    ) -> StoredFile:
        """Store a file; batch files expire after 30 days unless told otherwise."""
        if expires_after is None and purpose == "batch":
            expires_after = BATCH_EXPIRY_S
        expires_at = now + expires_after if expires_after is not None else None
        stored = StoredFile(file_id, filename, purpose, content, now, expires_at)
        self.files[file_id] = stored
        return stored

    def find(self, file_id: str) -> StoredFile | None:
        """One file, or None."""
        return self.files.get(file_id)

    def get(self, file_id: str) -> StoredFile:
        """One file, or OpenAI's 404."""
        if file_id not in self.files:
            raise file_not_found(file_id)
        return self.files[file_id]

    def delete(self, file_id: str) -> dict[str, Any]:
        """Delete a file."""
        self.get(file_id)
        del self.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    def listing(
        self, purpose: str | None, order: str, after: str | None, limit: int
    ) -> dict[str, Any]:
        """Files by creation order (`desc`: newest first), with first_id / last_id."""
        items = [f.to_dict() for f in self.files.values() if purpose in (None, f.purpose)]
        if order == "desc":
            items.reverse()
        return with_ids(page(items, after, limit))

    def __contains__(self, file_id: object) -> bool:
        """Whether the file exists."""
        return file_id in self.files

    def __len__(self) -> int:
        """How many files exist."""
        return len(self.files)
