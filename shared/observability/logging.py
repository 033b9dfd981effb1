"""JSON logs, one object per line, with the request, job and team they concern; secrets masked."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import IO, Any

from ftq.shared.observability.redaction import SecretRedactionFilter, redact, register_secret
from ftq.shared.settings import Settings, get_settings

EXTRA_FIELDS = ("method", "route", "path", "status", "duration_ms")
QUIET = {
    "uvicorn.access": logging.WARNING,  # ftq.access logs every request with its ids instead
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    # The openai SDK's transport: an INFO line per provider call (metrics count those calls).
    "httpx2": logging.WARNING,
    "httpcore2": logging.WARNING,
    "alembic": logging.WARNING,
}

# A mutable dict per request or task: a sync dependency running in a worker thread adds the team
# to the very dict the access log reads, which a plain ContextVar.set in that thread could not.
_context: ContextVar[dict[str, str] | None] = ContextVar("ftq_log_context", default=None)
_handler: logging.Handler | None = None


def bind(**fields: str | None) -> None:
    """Add fields (team_id, job_id …) to the current request's or task's log context."""
    context = _context.get()
    if context is None:
        context = {}
        _context.set(context)
    context.update({k: v for k, v in fields.items() if v})


def current() -> dict[str, str]:
    """The current log context."""
    return dict(_context.get() or {})


def open_scope(**fields: str) -> Token[dict[str, str] | None]:
    """Start a fresh context (a request, a task); close it with close_scope."""
    return _context.set({k: v for k, v in fields.items() if v})


def close_scope(token: Token[dict[str, str] | None]) -> None:
    """End a context started by open_scope."""
    _context.reset(token)


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, the context fields, known extras and the traceback."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, masked once more as a whole (tracebacks can carry secrets too)."""
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        data.update(current())
        for name in EXTRA_FIELDS:
            if name in record.__dict__:
                data[name] = record.__dict__[name]
        if record.exc_info:
            data["exc"] = record.exc_text or self.formatException(record.exc_info)
        return redact(json.dumps(data, default=str, ensure_ascii=False))


def configure_logging(
    service: str,
    *,
    level: str | None = None,
    stream: IO[str] | None = None,
    settings: Settings | None = None,
) -> logging.Handler:
    """Send every logger to one JSON handler on stderr (or stream); idempotent per process."""
    global _handler
    settings = settings or get_settings()
    for secret in _configured_secrets(settings):
        register_secret(secret)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(JsonFormatter(service))
    root.addHandler(_handler)
    root.setLevel((level or settings.log_level).upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    guard_handlers()
    return _handler


def guard_handlers() -> None:
    """Put the redaction filter on every handler of the root logger (ours and any added)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretRedactionFilter) for f in handler.filters):
            handler.addFilter(SecretRedactionFilter())


def is_configured() -> bool:
    """Whether configure_logging ran in this process."""
    return _handler is not None


def _configured_secrets(settings: Settings) -> list[str]:
    values = [settings.admin_token, settings.secret_key, settings.metrics_token]
    values += [settings.openai_api_key, settings.azure_api_key, settings.azure_ad_token]
    values.append(settings.openai_webhook_secret)
    return [v.get_secret_value() for v in values if v is not None]
