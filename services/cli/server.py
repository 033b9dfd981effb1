"""The commands that run the server need the `server` extra; the light client install lacks it."""

from __future__ import annotations

import importlib.util

import typer
from rich.console import Console

# One module of each server-only distribution the commands import.
SERVER_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "celery", "openai")
INSTALL_HINT = "pip install 'ftq[server]'"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        return False


def missing_server_modules() -> list[str]:
    """The server-only modules this environment cannot import."""
    return [name for name in SERVER_MODULES if not _importable(name)]


def require_server(command: str) -> None:
    """Exit with one line naming the install when the server extra is missing."""
    missing = missing_server_modules()
    if missing:
        Console(stderr=True).print(
            f"ftq {command} runs the server, which this install lacks "
            f"({', '.join(missing)}): {INSTALL_HINT}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
