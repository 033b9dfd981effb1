"""Frozen time and bulk jumps: exactly the jobs a test advances change between list sweeps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

N_JOBS = 250
LINES = [
    {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
    for i in range(12)
]


@pytest.fixture
def env() -> Iterator[tuple[openai.OpenAI, EmulatorControl]]:
    """A frozen emulator (speed 0), its SDK client and controls."""
    root, stop = serve_in_thread(create_app(speed=0))
    control = EmulatorControl(root)
    yield openai.OpenAI(api_key="t", base_url=f"{root}/v1", max_retries=0), control
    control.close()
    stop()


def sweep(client: openai.OpenAI) -> dict[str, str]:
    """One list-based sweep in pages of 100: job id -> status."""
    statuses: dict[str, str] = {}
    for job in client.fine_tuning.jobs.list(limit=100):
        statuses[job.id] = job.status
    return statuses


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """Jobs whose status moved."""
    return {job_id for job_id, status in after.items() if before.get(job_id) != status}


def test_frozen_clock_changes_exactly_the_advanced_jobs(
    env: tuple[openai.OpenAI, EmulatorControl],
) -> None:
    client, control = env
    content = "\n".join(json.dumps(line) for line in LINES).encode()
    training = client.files.create(file=("t.jsonl", content), purpose="fine-tune").id
    created = [
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training).id
        for _ in range(N_JOBS)
    ]
    assert {job["status"] for job in control.advance_many(created, to_status="running")} == {
        "running"
    }
    first = sweep(client)
    assert len(first) == N_JOBS and set(first.values()) == {"running"}
    assert control.stats()["calls"]["GET /v1/fine_tuning/jobs"] == 3
    time.sleep(0.2)
    assert changed(first, sweep(client)) == set()

    moved = control.advance_many(count=5, to_status="succeeded")
    assert [job["id"] for job in moved] == created[:5]
    second = sweep(client)
    assert changed(first, second) == set(created[:5])
    assert {second[job_id] for job_id in created[:5]} == {"succeeded"}

    nudged = created[10]
    events_before = client.fine_tuning.jobs.list_events(nudged, limit=100).data
    control.advance_many([nudged], seconds=3)
    events_after = client.fine_tuning.jobs.list_events(nudged, limit=100).data
    assert events_after[0].type == "metrics" and len(events_after) == len(events_before) + 1
    assert control.advance_many(count=5, to_status="succeeded")[0]["id"] == created[5]


def test_single_job_jumps_to_a_status(env: tuple[openai.OpenAI, EmulatorControl]) -> None:
    client, control = env
    content = "\n".join(json.dumps(line) for line in LINES).encode()
    training = client.files.create(file=("t.jsonl", content), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    assert job.estimated_finish is None
    assert control.advance(job.id, to_status="queued")["status"] == "queued"
    assert control.advance(job.id, to_status="running")["status"] == "running"
    assert control.advance(job.id, to_status="queued")["status"] == "running"  # never backwards
    assert control.advance(job.id, to_status="succeeded")["status"] == "succeeded"
    admin = str(control.http.base_url).rstrip("/")
    both = httpx.post(f"{admin}/jobs/{job.id}/advance", json={"seconds": 1, "to_status": "queued"})
    assert both.status_code == 400
    neither = httpx.post(f"{admin}/jobs/advance", json={"seconds": 1})
    assert neither.status_code == 400
    unknown = httpx.post(f"{admin}/jobs/advance", json={"job_ids": ["ftjob-nope"]})
    assert unknown.status_code == 404


def test_speed_zero_freezes_running_jobs(env: tuple[openai.OpenAI, EmulatorControl]) -> None:
    client, control = env
    content = "\n".join(json.dumps(line) for line in LINES).encode()
    training = client.files.create(file=("t.jsonl", content), purpose="fine-tune").id
    control.speed(600)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    # Frozen before the jump: at 600x a short job could finish in the moment between the two.
    control.speed(0)
    control.advance(job.id, to_status="running")
    frozen = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    time.sleep(0.2)
    assert client.fine_tuning.jobs.list_events(job.id, limit=100).data == frozen
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    control.speed(100_000)
    deadline = time.monotonic() + 10
    while client.fine_tuning.jobs.retrieve(job.id).status != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.02)
