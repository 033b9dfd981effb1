"""A small HTTP client for ftq's REST API (the demo, the team CLI and end-to-end tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}
EVAL_DONE = frozenset({"completed", "failed", "skipped"})  # an eval that will not move


class FtqAPIError(RuntimeError):
    """An error response from ftq, with its JSON body."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        error = body.get("error", {})
        super().__init__(f"{status_code} {error.get('code')}: {error.get('message')}")
        self.status_code = status_code
        self.body = body


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


class FtqClient:
    """Calls ftq with a team key (or the admin token)."""

    def __init__(self, base_url: str, key: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            trust_env=False,
            headers={"authorization": f"Bearer {key}"},
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; raise FtqAPIError on 4xx/5xx."""
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise FtqAPIError(response.status_code, _json(response))
        return response.json() if response.content else None

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paginated list, following `after` cursors."""
        items: list[dict[str, Any]] = []
        query = {"limit": 100, **params}
        while True:
            page = self.request("GET", path, params=query)
            items.extend(page["data"])
            if not page["has_more"]:
                return items
            query["after"] = page["data"][-1]["id"]

    def create_team(self, name: str, **fields: Any) -> dict[str, Any]:
        """Admin: create a team (returns its first key once)."""
        return dict(self.request("POST", "/v1/admin/teams", json={"name": name, **fields}))

    def upload_dataset(
        self, path: Path, on_read: Callable[[int], None] | None = None, **fields: str
    ) -> dict[str, Any]:
        """Upload a JSONL file, streamed from disk; `on_read` gets the bytes sent so far."""
        with path.open("rb") as handle:
            body: IO[bytes] | ProgressReader = (
                handle if on_read is None else ProgressReader(handle, on_read)
            )
            files = {"file": (path.name, body, "application/jsonl")}
            return dict(self.request("POST", "/v1/datasets", files=files, data=fields))

    def wait_dataset(
        self, dataset_id: str, timeout: float | None = 120.0, interval: float = 0.25
    ) -> dict[str, Any]:
        """Poll a dataset until its validation finished."""
        return self.wait(
            f"/v1/datasets/{dataset_id}",
            lambda d: d["status"] != "validating",
            timeout,
            interval,
            f"dataset {dataset_id}",
        )

    def wait_job(
        self, job_id: str, timeout: float = 300.0, on_change: Any = None
    ) -> dict[str, Any]:
        """Poll a job until it is terminal, reporting each status change."""
        seen: list[str] = []

        def done(job: dict[str, Any]) -> bool:
            if on_change and (not seen or seen[-1] != job["status"]):
                on_change(job)
            seen.append(job["status"])
            return job["status"] in TERMINAL

        return self.wait(f"/v1/jobs/{job_id}", done, timeout, what=f"job {job_id}")

    def wait(
        self,
        path: str,
        done: Callable[[dict[str, Any]], bool],
        timeout: float | None,
        interval: float = 0.25,
        what: str | None = None,
    ) -> dict[str, Any]:
        """GET `path` until done(body); TimeoutError after timeout seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            body = dict(self.request("GET", path))
            if done(body):
                return body
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{what or path} still {body.get('status')} after {timeout:.0f} s"
                )
            time.sleep(interval)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        return dict(response.json())
    except ValueError:
        return {"error": {"code": "http_error", "message": response.text[:200]}}
