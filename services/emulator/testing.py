"""Test helpers: serve an app on a loopback port; drive the emulator test double's controls."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp


def serve_in_thread(
    app: ASGIApp, host: str = "127.0.0.1", timeout: float = 10.0
) -> tuple[str, Callable[[], None]]:
    """Start uvicorn in a daemon thread on a free port; return (`http://host:port`, stop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("emulator server did not start")
        time.sleep(0.01)

    def stop() -> None:
        """Ask the server to exit and wait for it."""
        server.should_exit = True
        thread.join(timeout)
        sock.close()

    return f"http://{host}:{port}", stop


class EmulatorControl:
    """Client for the emulator's `/_emulator` controls; `root_url` is where the app is served."""

    def __init__(self, root_url: str) -> None:
        self.http = httpx.Client(base_url=root_url.rstrip("/") + "/_emulator", timeout=10)

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST and return the JSON answer (raises on an error status)."""
        response = self.http.post(path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def faults(self, **switches: Any) -> dict[str, Any]:
        """Replace the fault switches (see faults.Faults); no arguments turns them all off."""
        return self._post("/faults", switches)

    def reset(self) -> None:
        """Forget all files, jobs, faults and counters."""
        self._post("/reset")

    def stats(self) -> dict[str, Any]:
        """Call counts per route and creation counters."""
        response = self.http.get("/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET and return the JSON answer (raises on an error status)."""
        response = self.http.get(path, params=params)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def advance(
        self, job_id: str, seconds: float | None = None, to_status: str | None = None
    ) -> dict[str, Any]:
        """Jump a job forward by emulated seconds, to a status, or (neither) to its end."""
        return self._post(f"/jobs/{job_id}/advance", {"seconds": seconds, "to_status": to_status})

    def advance_many(
        self,
        job_ids: list[str] | None = None,
        count: int | None = None,
        seconds: float | None = None,
        to_status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Jump these jobs (or the `count` oldest unfinished ones) forward; returns them."""
        body = {"job_ids": job_ids, "count": count, "seconds": seconds, "to_status": to_status}
        return list(self._post("/jobs/advance", body)["data"])

    def close_account(self, since: str | None) -> None:
        """Close the account to new fine-tuning jobs from a day (None: reopen it)."""
        self._post("/account", {"closed_since": since})

    def speed(self, value: float) -> None:
        """Change the speed factor (0 freezes every job until advanced)."""
        self._post("/speed", {"speed": value})

    def webhooks(self, url: str, secret: str) -> dict[str, Any]:
        """Send OpenAI's fine_tuning.job.* webhooks to `url`, signed with a `whsec_` secret."""
        return self._post("/webhooks", {"url": url, "secret": secret})

    def stop_webhooks(self) -> None:
        """Stop sending webhooks."""
        self.http.delete("/webhooks").raise_for_status()

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery since the last `webhooks()` call, with its attempts."""
        return list(self._get("/webhooks")["deliveries"])

    def requests(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last API requests, newest first: method, path, query, api, route, auth, status."""
        return list(self._get("/requests", limit=limit)["data"])

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()
