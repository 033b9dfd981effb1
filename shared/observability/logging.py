"""JSON logs, one object per line, with the request, job and team they concern; secrets masked."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from pathlib import Path
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
# Set by configure_cli_logging: the log file of a CLI command that runs the embedded service.
_cli_log: Path | None = None
_cli_level: str | None = None


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
    """Send every logger to one JSON handler on stderr (or stream); idempotent per process.

    After configure_cli_logging, to that command's log file instead: the embedded API and worker
    it starts call this too, and their lines must stay off the terminal.
    """
    global _handler
    settings = settings or get_settings()
    for secret in _configured_secrets(settings):
        register_secret(secret)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    wanted = (level or settings.log_level).upper()
    if _cli_log is not None and stream is None:
        _handler = logging.FileHandler(_cli_log, encoding="utf-8")
        _handler.addFilter(_third_party_at_warning)
        # The command's level for ftq's own loggers (not the worker's); third-party at WARNING.
        root.setLevel(logging.WARNING)
        logging.getLogger("ftq").setLevel(_cli_level or wanted)
    else:
        _handler = logging.StreamHandler(stream or sys.stderr)
        root.setLevel(wanted)
        logging.getLogger("ftq").setLevel(logging.NOTSET)
    # One process, one name: the embedded API and worker log as the CLI command that runs them.
    _handler.setFormatter(JsonFormatter("cli" if _cli_log is not None else service))
    root.addHandler(_handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    guard_handlers()
    return _handler


def _third_party_at_warning(record: logging.LogRecord) -> bool:
    # Some libraries set their loggers' own levels (INFO): the CLI's file keeps their warnings.
    ours = record.name == "ftq" or record.name.startswith("ftq.")
    return ours or record.levelno >= logging.WARNING


def configure_cli_logging(log_file: Path, settings: Settings | None = None) -> Path:
    """A CLI command running the embedded service: every log line (JSON) to log_file, none on
    the terminal, ftq's loggers at FTQ_LOG_LEVEL and third-party ones at WARNING."""
    global _cli_log, _cli_level
    settings = settings or get_settings()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    _cli_log, _cli_level = log_file, settings.log_level.upper()
    logging.captureWarnings(True)  # a library's warnings.warn would print to stderr
    configure_logging("cli", settings=settings)
    return log_file


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
