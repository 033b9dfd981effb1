"""A local job from POST to `succeeded` on Postgres + Redis + real Celery workers, with its gpu
worker SIGKILLed mid-training: a new worker resumes at the last checkpoint, not step 0; the loss
falls, checkpoints are kept, and the downloaded adapter reloads in a fresh process."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ftq.services.cli.client import FtqClient
from tests.local.helpers import (
    assert_adapter_reloads,
    build_tiny,
    celery_worker,
    jsonl,
    local_job_body,
    require_local_stack,
    start_distributed_local,
    tiny_of,
    units_rows,
    wait_for,
)
from tests.services import postgres_url_or_skip, redis_url_or_skip

pytestmark = pytest.mark.e2e
GPU_WORKER = ["-P", "solo", "--concurrency", "1", "--prefetch-multiplier", "1"]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """The distributed stack with the tiny model configured."""
    require_local_stack()
    postgres_url_or_skip()
    tiny = build_tiny(tmp_path / "tiny")
    stack, database_url, env = start_distributed_local(tmp_path, redis_url_or_skip(), tiny)
    try:
        yield stack, database_url, env
    finally:
        stack.stop()


def test_killed_worker_resumes_from_its_last_checkpoint(running: Any, tmp_path: Path):
    stack, database_url, env = running
    team = FtqClient(stack.url, "dev-admin-token").create_team("resume")
    client = FtqClient(stack.url, team["api_key"]["key"], timeout=60)
    data = tmp_path / "units.jsonl"
    data.write_bytes(jsonl(units_rows(60)))
    dataset = client.wait_dataset(client.upload_dataset(data)["id"])
    job = client.request(
        "POST",
        "/v1/jobs",
        json=local_job_body(dataset["id"], n_epochs=4, batch_size=1, learning_rate_multiplier=10),
    )
    database = create_engine(database_url.replace("+psycopg", "+psycopg"))

    def kept_steps() -> list[int]:
        with database.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.step FROM local_checkpoints c JOIN local_runs r ON r.id = c.run_id "
                    "WHERE r.ftq_job_id = :j ORDER BY c.step"
                ),
                {"j": job["id"]},
            )
            return [row.step for row in rows]

    first = stack.spawn("gpu-1", [*celery_worker("gpu"), *GPU_WORKER], env)
    wait_for(kept_steps, 240, "the first checkpoint", interval=0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    last = max(kept_steps())
    assert last < 240, "training finished before the kill; the test needs a longer run"

    stack.spawn("gpu-2", [*celery_worker("gpu"), *GPU_WORKER], env)
    done = client.wait_job(job["id"], timeout=300)
    assert done["status"] == "succeeded", (done, stack.logs())

    events = [e["message"] for e in client.list_all(f"/v1/jobs/{job['id']}/events")]
    starts = [m for m in events if m.startswith("Training started on")]
    assert starts[0] == "Training started on cpu (from step 0)"
    resumed = [m for m in starts if "resuming" in m]
    assert resumed, events
    assert int(re.search(r"step (\d+)", resumed[-1]).group(1)) == last  # type: ignore[union-attr]
    assert any(m.startswith("Training worker stopped") for m in events), events
    database.dispose()
    metrics = client.request("GET", f"/v1/jobs/{job['id']}/metrics")["data"]
    assert [m["step"] for m in metrics] == list(range(1, 241))
    losses = [m["train_loss"] for m in metrics]
    assert sum(losses[-10:]) < sum(losses[:10]) * 0.7, losses
    checkpoints = client.request("GET", f"/v1/jobs/{job['id']}/checkpoints")["data"]
    assert [c["step_number"] for c in checkpoints] == [60, 120, 180, 240]  # every one ftq saw
    kept = sorted((tmp_path / "data" / "local" / "runs").glob("*/checkpoint-*"))
    assert [p.name for p in kept] == ["checkpoint-120", "checkpoint-180", "checkpoint-240"]
    assert all((p / "optimizer.pt").is_file() for p in kept)  # resumable: optimizer state kept
    assert done["fine_tuned_model"].startswith("local:tiny:units:")
    assert_adapter_reloads(client, job["id"], tiny_of(env), tmp_path / "adapter")
