"""The Ray cluster as ftq sees it: its dashboard's address and the resources its nodes hold.

Read over the dashboard's HTTP API, so the API process checks job requests without Ray installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ftq.shared.settings import get_settings

log = logging.getLogger(__name__)
CACHE_SECONDS = 30.0
_cache: dict[str, tuple[float, Resources]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Resources:
    """Totals over the cluster's live nodes, and the most one node holds."""

    cpus: float
    gpus: float
    node_cpus: float
    node_gpus: float


def address() -> str:
    """The dashboard URL of FTQ_RAY_ADDRESS, else of the head this machine's worker starts."""
    settings = get_settings()
    return settings.ray_address or f"http://127.0.0.1:{settings.ray_dashboard_port}"


def resources() -> Resources | None:
    """The cluster's resources (cached briefly); None when the cluster does not answer."""
    url = address()
    with _lock:
        cached = _cache.get(url)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
    try:
        response = httpx.get(
            f"{url}/nodes", params={"view": "summary"}, headers=auth_headers(), timeout=5.0
        )
        response.raise_for_status()
        view = parse(response.json())
        if view is None:
            return None
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("the Ray cluster at %s did not say its resources: %s", url, exc)
        return None
    with _lock:
        _cache[url] = (time.monotonic(), view)
    return view


def parse(body: dict[str, Any]) -> Resources | None:
    """Resources from the dashboard's `/nodes?view=summary` answer; None before a node joins."""
    nodes = [
        node["raylet"].get("resourcesTotal", {})
        for node in body["data"]["summary"]
        if node.get("raylet", {}).get("state", "ALIVE") == "ALIVE"
    ]
    if not nodes:
        return None
    cpus = [float(node.get("CPU", 0)) for node in nodes]
    gpus = [float(node.get("GPU", 0)) for node in nodes]
    return Resources(sum(cpus), sum(gpus), max(cpus, default=0.0), max(gpus, default=0.0))


def auth_headers() -> dict[str, str]:
    """The bearer a token-authenticated Ray cluster wants (Ray 2.5x's `RAY_AUTH_MODE=token`).

    Found where Ray's own clients look, in their order: RAY_AUTH_TOKEN, the file named by
    RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token (which a local `ray.init()` writes). A cluster
    without authentication ignores it; unless RAY_AUTH_MODE is "disabled", none is sent then.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        with contextlib.suppress(OSError):
            token = path.read_text().strip()
    return {"authorization": f"Bearer {token}"} if token else {}


def forget() -> None:
    """Drop the cached view (a new head started, or a test changed the address)."""
    with _lock:
        _cache.clear()
