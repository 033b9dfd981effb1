"""Downloads of stored blobs, named by RFC 6266 `filename*=` with a plain ASCII fallback."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from ftq.shared.storage import get_blob_store

_UNSAFE_FALLBACK = re.compile(r'[^A-Za-z0-9._ -]|["\\]')


def attachment(filename: str) -> dict[str, str]:
    """The header that names a download, safe for any name (quotes, non-Latin-1, controls)."""
    fallback = _UNSAFE_FALLBACK.sub("_", filename).strip() or "download"
    encoded = quote(filename, safe="")
    return {
        "content-disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    }


def blob_download(blob_key: str, filename: str, media_type: str) -> StreamingResponse:
    """A stored blob streamed as an attachment called `filename`."""
    return StreamingResponse(
        get_blob_store().iter_bytes(blob_key), media_type=media_type, headers=attachment(filename)
    )
