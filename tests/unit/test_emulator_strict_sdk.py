"""The emulator's answers pass the openai SDK's strict response validation on every route.

`_strict_response_validation=True` makes the SDK validate each body against its own types, so a
field of the wrong shape (an `error` object of nulls on a job that has not failed, a missing
required field) fails here. The checkpoint permissions routes are served as OpenAI serves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

MODEL = "gpt-4o-mini-2024-07-18"


def _rows(n: int) -> bytes:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[OpenAI, EmulatorControl]]:
    root, stop = serve_in_thread(create_app(speed=1e-9))
    control = EmulatorControl(root)
    control.speed(0)
    client = OpenAI(
        api_key="test", base_url=f"{root}/v1", max_retries=0, _strict_response_validation=True
    )
    yield client, control
    stop()


def test_files_and_jobs_pass_strict_validation(served: tuple[OpenAI, EmulatorControl]) -> None:
    client, control = served
    training = client.files.create(
        file=("t.jsonl", _rows(20), "application/jsonl"), purpose="fine-tune"
    )
    assert client.files.retrieve(training.id).id == training.id
    assert training.id in [f.id for f in client.files.list(purpose="fine-tune")]
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=training.id, hyperparameters={"n_epochs": 2}
    )
    assert job.error is None, "null until the job fails"
    assert client.fine_tuning.jobs.retrieve(job.id).error is None
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=5)]
    control.advance(job.id, to_status="running")
    # OpenAI answers a pause with status `paused`, which the SDK's enum lacks (OPENAI.md): the
    # emulator keeps that, so this one answer is checked strictly with only its status replaced.
    raw = client.fine_tuning.jobs.with_raw_response.pause(job.id)
    paused = json.loads(raw.http_response.content)
    assert paused["status"] == "paused"
    FineTuningJob.model_validate({**paused, "status": "running"}, strict=True)
    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "running"
    control.advance(job.id)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.error is None and done.fine_tuned_model
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert any(e.type == "metrics" for e in events)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].fine_tuning_job_id == job.id
    other = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=training.id
    )
    assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"
    assert client.files.delete(training.id).deleted


def test_checkpoint_permissions_are_served(served: tuple[OpenAI, EmulatorControl]) -> None:
    client, control = served
    training = client.files.create(
        file=("p.jsonl", _rows(12), "application/jsonl"), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=training.id)
    control.advance(job.id)
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert model
    permissions = client.fine_tuning.checkpoints.permissions
    created = permissions.create(model, project_ids=["proj_a", "proj_b"])
    assert [p.project_id for p in created.data] == ["proj_a", "proj_b"]
    listed = permissions.retrieve(model)
    assert [p.project_id for p in listed.data] == ["proj_b", "proj_a"], "newest first"
    assert [p.project_id for p in permissions.retrieve(model, project_id="proj_a").data] == [
        "proj_a"
    ]
    gone = permissions.delete(created.data[0].id, fine_tuned_model_checkpoint=model)
    assert gone.deleted and gone.id == created.data[0].id
    assert [p.project_id for p in permissions.retrieve(model).data] == ["proj_b"]
    with pytest.raises(openai.NotFoundError):
        permissions.create("ft:gpt-4o-mini-2024-07-18:nobody::none", project_ids=["proj_a"])
    with pytest.raises(openai.NotFoundError):
        permissions.delete("cp_missing", fine_tuned_model_checkpoint=model)
