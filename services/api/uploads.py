"""Streaming multipart upload: the file part goes straight to blob storage, hashed and capped."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ftq.shared.errors import BadRequest, PayloadTooLarge, Unprocessable
from ftq.shared.storage import BlobStore, StoredBlob

MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 8 * 1024
# Boundaries, part headers and the small form fields, on top of the file's own limit.
MAX_OVERHEAD_BYTES = 256 * 1024


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class ParsedUpload:
    """The stored file and the plain form fields."""

    blob: StoredBlob
    filename: str
    fields: dict[str, str]


class _FileSink:
    """Writes one file part to a partial blob, hashing and enforcing the size limit."""

    def __init__(self, store: BlobStore, prefix: str, max_bytes: int) -> None:
        self.key = f"{prefix}/{uuid.uuid4().hex}"
        self.final = store.path(self.key)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.partial: Path = self.final.with_suffix(".part")
        self.handle: IO[bytes] = self.partial.open("wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(
                f"file is larger than the limit of {self.max_bytes} bytes", param="file"
            )
        self.digest.update(chunk)
        self.handle.write(chunk)

    def finish(self) -> StoredBlob:
        self.handle.close()
        if self.size == 0:
            raise BadRequest("file is empty", param="file", code="empty_file")
        os.replace(self.partial, self.final)
        return StoredBlob(key=self.key, size=self.size, sha256=self.digest.hexdigest())

    def discard(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)
        self.final.unlink(missing_ok=True)


class _Collector:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(
        self, store: BlobStore, prefix: str, max_bytes: int, allowed: frozenset[str]
    ) -> None:
        self.store, self.prefix, self.max_bytes = store, prefix, max_bytes
        self.allowed = allowed
        self.part = _Part()
        self.header_bytes = 0
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.sink: _FileSink | None = None
        self.filename = ""
        self.fields: dict[str, str] = {}

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._header_bytes(self.header_field, d[s:e]),
            "on_header_value": lambda d, s, e: self._header_bytes(self.header_value, d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self.part = _Part()
        self.header_bytes = 0

    def _header_bytes(self, into: bytearray, data: bytes) -> None:
        self.header_bytes += len(data)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise BadRequest("a multipart part's headers are too long", param="file")
        into.extend(data)

    def _header_end(self) -> None:
        self.part.headers[self.header_field.decode("latin-1").lower()] = self.header_value.decode(
            "latin-1"
        )
        self.header_field.clear()
        self.header_value.clear()

    def _headers_done(self) -> None:
        _, options = parse_options_header(self.part.headers.get("content-disposition", ""))
        self.part.name = options.get(b"name", b"").decode()
        raw_filename = options.get(b"filename")
        self.part.filename = raw_filename.decode() if raw_filename is not None else None
        if self.part.name != "file" and self.part.filename is not None:
            raise BadRequest(
                f"a file came in field {self.part.name!r}: send it in a field named 'file'",
                param="file",
            )
        if self.part.name != "file" and self.part.name not in self.allowed:
            raise Unprocessable(
                f"unknown form field {self.part.name!r}; allowed: file, "
                + ", ".join(sorted(self.allowed)),
                param=self.part.name or "file",
            )
        if self.part.name in self.fields:
            raise Unprocessable(
                f"form field {self.part.name!r} is given twice", param=self.part.name
            )
        if self.part.name == "file" and self.part.filename is not None:
            if self.sink is not None:
                raise BadRequest("only one file may be uploaded", param="file")
            self.sink = _FileSink(self.store, self.prefix, self.max_bytes)
            self.filename = Path(self.part.filename).name

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.part.name == "file" and self.sink is not None and self.part.filename is not None:
            self.sink.write(data[start:end])
            return
        self.part.data.extend(data[start:end])
        if len(self.part.data) > MAX_FIELD_BYTES:
            raise BadRequest(f"form field {self.part.name!r} is too long", param=self.part.name)

    def _end(self) -> None:
        if self.part.filename is None:
            self.fields[self.part.name] = self.part.data.decode("utf-8", errors="replace")


async def receive_upload(
    request: Request, store: BlobStore, prefix: str, max_bytes: int, fields: frozenset[str]
) -> ParsedUpload:
    """Parse a multipart body as it arrives; a failure leaves no blob behind.

    Every byte counts against the limit (chunked bodies too), and a field outside `fields` is
    refused as soon as its headers arrive, before its value is read.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise BadRequest(
            "send the file as multipart/form-data in a field named 'file'", param="file"
        )
    declared = int(request.headers.get("content-length") or 0)
    limit = max_bytes + MAX_OVERHEAD_BYTES
    if declared > limit:
        raise PayloadTooLarge(f"upload is larger than the limit of {max_bytes} bytes", param="file")
    collector = _Collector(store, prefix, max_bytes, fields)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(
                    f"upload is larger than the limit of {max_bytes} bytes", param="file"
                )
            parser.write(chunk)
        parser.finalize()
        if collector.sink is None:
            raise BadRequest("no file in the upload: send it in a field named 'file'", param="file")
        blob = collector.sink.finish()
    except MultipartParseError as exc:
        if collector.sink is not None:
            collector.sink.discard()
        raise BadRequest(f"malformed multipart body: {exc}", param="file") from exc
    except BaseException:
        if collector.sink is not None:
            collector.sink.discard()
        raise
    return ParsedUpload(blob=blob, filename=collector.filename, fields=collector.fields)
