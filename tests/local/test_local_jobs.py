"""Cancelling a local job through the real API and embedded worker (`ftq up`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ftq.services.cli.client import FtqClient
from tests.e2e.stack import Stack
from tests.local.helpers import (
    build_tiny,
    jsonl,
    local_job_body,
    require_local_stack,
    start_embedded_local,
    units_rows,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, built once for this module."""
    require_local_stack()
    return build_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def stack(tmp_path: Path, tiny: Path) -> Iterator[Stack]:
    """`ftq up` with the tiny model configured."""
    running = start_embedded_local(tmp_path, tmp_path / "data", tiny)
    try:
        yield running
    finally:
        running.stop()


def _team_client(stack: Stack) -> FtqClient:
    team = FtqClient(stack.url, "dev-admin-token").create_team("local")
    return FtqClient(stack.url, team["api_key"]["key"], timeout=60)


def _dataset(client: FtqClient, tmp_path: Path, rows: list[dict[str, Any]]) -> str:
    path = tmp_path / "units.jsonl"
    path.write_bytes(jsonl(rows))
    dataset = client.wait_dataset(client.upload_dataset(path)["id"])
    assert dataset["status"] == "ready", dataset
    return str(dataset["id"])


def test_cancel_stops_training_within_moments(stack: Stack, tmp_path: Path):
    client = _team_client(stack)
    dataset = _dataset(client, tmp_path, units_rows(200))
    body = local_job_body(dataset, n_epochs=10, batch_size=1)
    job = client.request("POST", "/v1/jobs", json=body)
    database = create_engine(f"sqlite:///{tmp_path / 'data' / 'ftq.sqlite3'}")

    def run_state() -> Any:
        with database.connect() as conn:
            return conn.execute(
                text("SELECT status, step, total_steps FROM local_runs WHERE ftq_job_id = :j"),
                {"j": job["id"]},
            ).first()

    wait_for(lambda: (s := run_state()) is not None and s.step >= 5, 180, "training steps")
    client.request("POST", f"/v1/jobs/{job['id']}/cancel")
    asked = time.monotonic()
    stopped = wait_for(
        lambda: (s := run_state()) is not None and s.status == "cancelled" and s, 60, "the stop"
    )
    assert time.monotonic() - asked < 30
    assert stopped.step < stopped.total_steps
    before = stopped.step
    time.sleep(1.5)
    assert run_state().step == before  # nothing trains on after the cancel
    assert client.request("GET", f"/v1/jobs/{job['id']}")["status"] == "cancelled"
    database.dispose()
