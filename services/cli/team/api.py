"""The CLI's connection to ftq: credentials, exit codes, error reporting."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import typer
from rich.console import Console

from ftq.services.cli.client import FtqAPIError, FtqClient
from ftq.services.cli.team import config

OK, FAILED, USAGE, API_ERROR = 0, 1, 2, 3
EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 the outcome was a failure (job failed or cancelled, dataset invalid, "
    "eval failed, or a wait timed out), 2 usage (bad options, not logged in), 3 API or HTTP error "
    "(the server's error message is printed)."
)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int) -> typer.Exit:
    """Print an error on stderr and return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def connect(
    credentials: config.Credentials | None = None, timeout: float = 60.0
) -> Iterator[FtqClient]:
    """A client for the configured server; API and network errors exit with code 3."""
    if credentials is None:
        try:
            credentials = config.load()
        except config.NotLoggedIn as exc:
            raise fail(str(exc), USAGE) from exc
    client = FtqClient(credentials.url, credentials.key, timeout=timeout)
    try:
        yield client
    except FtqAPIError as exc:
        raise fail(str(exc), API_ERROR) from exc
    except httpx.HTTPError as exc:
        raise fail(f"cannot talk to {credentials.url}: {exc}", API_ERROR) from exc
    except TimeoutError as exc:
        raise fail(str(exc), FAILED) from exc
    finally:
        client.close()


def print_json(value: Any) -> None:
    """One JSON document on stdout (for scripts)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()
