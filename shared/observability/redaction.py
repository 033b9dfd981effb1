"""A logging filter that masks secrets before any handler formats them."""

from __future__ import annotations

import logging
import re

MASK = "[REDACTED]"
_TRACEBACKS = logging.Formatter()
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"whsec_[A-Za-z0-9+/=_-]+"),
    re.compile(r"sk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"ftq_[A-Za-z0-9_-]{8,}"),
)


_LITERAL_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this exact value too (the admin token, configured provider keys)."""
    if value and len(value) >= 8:
        _LITERAL_SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every bearer token, webhook secret and API key in text with a mask."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    for secret in _LITERAL_SECRETS:
        text = text.replace(secret, MASK)
    return text


class SecretRedactionFilter(logging.Filter):
    """Render the message once, masked, so arguments cannot leak secrets either."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set: the traceback is masked for every handler.
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
        return True
