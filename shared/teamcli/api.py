"""The CLI's connection to ftq: credentials, exit codes, error reporting, a streamed upload."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import typer
from rich.console import Console

from shared.client import FtqAPIError, FtqClient
from shared.teamcli import config

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


class ProgressReader:
    """A file wrapper that reports every chunk httpx reads while streaming the multipart body."""

    def __init__(self, handle: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.handle = handle
        self.on_read = on_read
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.sent += len(chunk)
        self.on_read(self.sent)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.handle.seek(offset, whence)
        if whence == 0:
            self.sent = position
        return position

    def tell(self) -> int:
        return self.handle.tell()

    def fileno(self) -> int:
        return self.handle.fileno()


def upload(
    client: FtqClient, path: Path, fields: dict[str, str], on_read: Callable[[int], None]
) -> dict[str, Any]:
    """POST /v1/datasets streaming the file from disk, reporting bytes sent."""
    with path.open("rb") as handle:
        reader = ProgressReader(handle, on_read)
        files = {"file": (path.name, reader, "application/jsonl")}
        return dict(client.request("POST", "/v1/datasets", files=files, data=fields))


def poll(
    fetch: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    timeout: float | None,
    interval: float,
    what: str,
) -> dict[str, Any]:
    """Call fetch until done(result); TimeoutError after timeout seconds (None: no limit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        body = fetch()
        if done(body):
            return body
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{what} still {body.get('status')} after {timeout:.0f} s")
        time.sleep(interval)
