"""With FTQ_RAY_ADDRESS unset, the `gpu` worker starts a Ray head of its own, once, answering at
FTQ_RAY_DASHBOARD_PORT (the head outlives the worker, so it is not the worker's child)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftq.shared.serving import free_port
from ftq.shared.settings import reset_settings
from tests.local.helpers import require_local_stack

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def own_head_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """No FTQ_RAY_ADDRESS, a free dashboard port, Ray's files in a temp folder of this test."""
    require_local_stack()
    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ftqhead")  # short: Ray's socket paths have a length limit
    port = free_port()
    monkeypatch.delenv("FTQ_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("FTQ_RAY_DASHBOARD_PORT", str(port))
    monkeypatch.setenv("RAY_TMPDIR", temp)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # whatever ~/.ray/auth_token holds
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    reset_settings()
    try:
        yield port
    finally:
        for _ in range(2):  # the head's GCS, raylet, dashboard and workers all name the folder
            for pid in _processes_mentioning(temp):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        reset_settings()


def test_the_worker_starts_one_ray_head_when_no_cluster_is_named(own_head_settings: int) -> None:
    from ftq.shared.providers.local import ray_cluster, ray_jobs

    ray_cluster.forget()
    assert ray_cluster.resources() is None, "nothing answers before the worker starts a head"
    ray_jobs.ensure_head()
    found = ray_cluster.resources()
    assert found is not None and found.cpus >= 1
    assert ray_cluster.address() == f"http://127.0.0.1:{own_head_settings}"
    ray_jobs.ensure_head()  # a second worker (or a retry) finds the head and starts none
    gcs = [p for p in _processes_mentioning("gcs_server") if p in _processes_mentioning("ftqhead")]
    assert len(gcs) == 1, "one head, not two"
