"""A logging filter that masks secrets before any handler formats them."""

from __future__ import annotations

import logging
import re

MASK = "[REDACTED]"
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"whsec_[A-Za-z0-9+/=_-]+"),
    re.compile(r"sk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"ftq_[A-Za-z0-9_-]{8,}"),
)


def redact(text: str) -> str:
    """Replace every bearer token, webhook secret and API key in text with a mask."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return text


class SecretRedactionFilter(logging.Filter):
    """Render the message once, masked, so arguments cannot leak secrets either."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
