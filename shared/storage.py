"""Blob storage in a local folder (keys are relative paths)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ftq.shared.settings import get_settings

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    """What a streamed write produced."""

    key: str
    size: int
    sha256: str


class BlobStore:
    """Keys are relative paths under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file behind a key (refusing keys that escape the root)."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key escapes the store: {key}")
        return path

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store small content under a fixed key."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """Stream a blob's content."""
        with self.path(key).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def scratch_path(self) -> Path:
        """A fresh path inside the store, so a finished file can be adopted by a rename."""
        path = self.path(f"tmp/{uuid.uuid4().hex}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def adopt(self, prefix: str, src: Path) -> StoredBlob:
        """Move a finished file into the store under `prefix`, hashing it on the way."""
        digest, size = hashlib.sha256(), 0
        with src.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        key = f"{prefix}/{uuid.uuid4().hex}.jsonl"
        dst = self.path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        return StoredBlob(key=key, size=size, sha256=digest.hexdigest())

    def delete(self, key: str) -> None:
        """Remove a blob if it exists."""
        self.path(key).unlink(missing_ok=True)


def get_blob_store() -> BlobStore:
    """The store configured by FTQ_BLOB_DIR (or the data folder)."""
    return BlobStore(get_settings().resolved_blob_dir)
