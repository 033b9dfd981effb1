"""Where the CLI finds the server and key: FTQ_URL and FTQ_API_KEY, else `ftq login`'s file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import typer

APP_NAME = "ftq"


@dataclass(frozen=True)
class Credentials:
    """The API's base URL and a team key."""

    url: str
    key: str

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, key='***')"


class NotLoggedIn(Exception):
    """No URL or key in the environment nor in the config file."""


def config_path() -> Path:
    """The config file under the user's config dir (XDG_CONFIG_HOME on Linux)."""
    return Path(typer.get_app_dir(APP_NAME)) / "config.json"


def save(credentials: Credentials) -> Path:
    """Write the config file readable by its owner only (0600, folder 0700)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({"url": credentials.url, "api_key": credentials.key}, indent=2)
    # Created 0600 from the start, so the key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body + "\n")
    path.chmod(0o600)
    return path


def _stored() -> dict[str, str]:
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load() -> Credentials:
    """The credentials to use; the environment wins over the file."""
    stored = _stored()
    url = os.environ.get("FTQ_URL") or stored.get("url")
    key = os.environ.get("FTQ_API_KEY") or stored.get("api_key")
    if not url or not key:
        raise NotLoggedIn(
            "not logged in: run `ftq login --url URL --key KEY` or set FTQ_URL and FTQ_API_KEY"
        )
    return Credentials(url.rstrip("/"), key)
