"""One rich progress display for the CLI's long work: upload, validation, training, evals.

On a terminal a live bar (bytes sent, steps with the current loss, a spinner while waiting); when
stdout is not a terminal (tests, pipes, CI logs) nothing live, only the plain lines printed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ftq.services.cli.client import EVAL_DONE, TERMINAL, FtqClient


@contextmanager
def display(console: Console, enabled: bool = True) -> Iterator[Progress]:
    """The one progress display: spinner, what, bar, detail (step and loss), elapsed time.

    Transient: once the work is done only the lines printed stay, as in a pipe.
    """
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    live = enabled and console.is_terminal
    with Progress(*columns, console=console, disable=not live, transient=True) as progress:
        yield progress


def upload_and_validate(
    client: FtqClient, console: Console, path: Path, timeout: float = 600.0, **fields: str
) -> dict[str, Any]:
    """Upload a file with a bytes bar, then wait for its validation with a spinner."""
    size = path.stat().st_size
    with display(console) as progress:
        task = progress.add_task(f"uploading {path.name}", total=size, detail="")

        def sent(n: int) -> None:
            progress.update(task, completed=n, detail=f"{n / 1e6:.1f}/{size / 1e6:.1f} MB")

        created = client.upload_dataset(path, sent, **fields)
        progress.update(task, completed=size, visible=False)
        progress.add_task(f"validating {created['id']}", total=None, detail="")
        return client.wait_dataset(created["id"], timeout)


def watch_training(
    client: FtqClient, console: Console, job_id: str, timeout: float = 1800.0
) -> dict[str, Any]:
    """Poll a job to its end: a line per status, the bar at the current step with its loss."""
    deadline = time.monotonic() + timeout
    seen = None
    with display(console) as progress:
        task = progress.add_task("training", total=None, detail="")
        while True:
            job = dict(client.request("GET", f"/v1/jobs/{job_id}"))
            if job["status"] != seen:
                progress.console.print(f"  status {job['status']}")
                seen = job["status"]
            if job["status"] in ("running", "succeeded"):
                _show_step(client, job_id, progress, task)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
            time.sleep(1.0)


def wait_eval(
    client: FtqClient, console: Console, job: dict[str, Any], timeout: float = 900.0
) -> dict[str, Any]:
    """Wait for a job's eval with a spinner; the eval as GET /v1/evals/{id} returns it."""
    evaluation = job.get("eval") or {}
    deadline = time.monotonic() + timeout
    with display(console) as progress:
        progress.add_task(f"eval {evaluation.get('id') or ''}", total=None, detail="")
        while evaluation and evaluation.get("status") not in EVAL_DONE:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
            evaluation = client.request("GET", f"/v1/jobs/{job['id']}").get("eval") or {}
    if evaluation.get("id"):
        evaluation = dict(client.request("GET", f"/v1/evals/{evaluation['id']}"))
    return evaluation


def _show_step(client: FtqClient, job_id: str, progress: Progress, task: TaskID) -> None:
    points = client.request("GET", f"/v1/jobs/{job_id}/metrics")["data"]
    if not points:
        return
    last = points[-1]
    total = last.get("total_steps")
    loss = last.get("train_loss")
    detail = f"step {last['step']}/{total or '?'}" + (
        f", loss {loss:.3f}" if loss is not None else ""
    )
    progress.update(task, completed=last["step"], total=total, detail=detail)
