"""The OpenAI emulator (a test double of OpenAI) driven by the real SDK over real HTTP."""

from __future__ import annotations

import base64
import importlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai.types.chat import ChatCompletionMessageParam

from ftq.services.emulator import plan
from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

REPO = Path(__file__).resolve().parents[2]
SPEED = 600.0
MODEL_NAME = re.compile(r"^ft:gpt-4o-mini-2024-07-18:emulator:(?P<suffix>[^:]*):[A-Za-z0-9]{8}$")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """One emulator on a loopback port for the whole module."""
    root, stop = serve_in_thread(create_app(speed=SPEED))
    yield root
    stop()


@pytest.fixture
def control(server: str) -> Iterator[EmulatorControl]:
    """The admin client; every test starts from an empty emulator."""
    ctl = EmulatorControl(server)
    ctl.reset()
    yield ctl
    ctl.close()


@pytest.fixture
def client(server: str, control: EmulatorControl) -> openai.OpenAI:
    """The official SDK pointed at the emulator, without retries."""
    return openai.OpenAI(api_key="test", base_url=f"{server}/v1", max_retries=0)


def chat_line(i: int, answer: str = "B") -> dict[str, Any]:
    """One chat example whose prompt is a multiple-choice question."""
    prompt = f"Question {i}: pick one.\nA. alpha\nB. beta\nC. gamma\nD. delta"
    turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return {"messages": turns}


def preference_line(i: int) -> dict[str, Any]:
    """One DPO example."""
    return {
        "input": {"messages": [{"role": "user", "content": f"Say hi #{i}"}]},
        "preferred_output": [{"role": "assistant", "content": "Hi!"}],
        "non_preferred_output": [{"role": "assistant", "content": "No."}],
    }


def upload(client: openai.OpenAI, lines: list[Any], name: str = "train.jsonl") -> str:
    """Upload JSONL lines for fine-tuning; return the file id."""
    body = "\n".join(json.dumps(line) for line in lines).encode()
    return client.files.create(file=(name, body), purpose="fine-tune").id


def chat_file(client: openai.OpenAI, n: int = 20) -> str:
    """A valid chat training file of n examples."""
    return upload(client, [chat_line(i) for i in range(n)])


def wait_for(client: openai.OpenAI, job_id: str, statuses: set[str], timeout: float = 15) -> Any:
    """Poll until the job reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def raw(server: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A plain HTTP call, for exact bodies and headers."""
    return httpx.request(method, server + path, timeout=10, **kwargs)


# -- files -----------------------------------------------------------------------------------


def test_files_upload_list_read_download_delete(client: openai.OpenAI, server: str) -> None:
    ids = [chat_file(client, 10 + i) for i in range(3)]
    evals = client.files.create(file=("eval.jsonl", b'{"input": []}\n'), purpose="evals")
    listed = client.files.list()
    assert [f.id for f in listed.data] == [evals.id, *reversed(ids)]
    first = client.files.retrieve(ids[0])
    assert re.fullmatch(r"file-[A-Za-z0-9]{22}", first.id)
    assert (first.object, first.purpose, first.status, first.filename) == (
        "file",
        "fine-tune",
        "processed",
        "train.jsonl",
    )
    assert client.files.content(ids[0]).text.startswith('{"messages"')
    asc = raw(server, "GET", "/v1/files", params={"order": "asc", "limit": 2}).json()
    assert [f["id"] for f in asc["data"]] == ids[:2]
    assert (asc["first_id"], asc["last_id"], asc["has_more"]) == (ids[0], ids[1], True)
    rest = raw(server, "GET", "/v1/files", params={"order": "asc", "after": ids[1]}).json()
    assert [f["id"] for f in rest["data"]] == [ids[2], evals.id]
    only_evals = raw(server, "GET", "/v1/files", params={"purpose": "evals"}).json()
    assert [f["id"] for f in only_evals["data"]] == [evals.id]
    deleted = client.files.delete(ids[0])
    assert (deleted.id, deleted.deleted) == (ids[0], True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(ids[0])


def test_missing_file_404_body_is_exact(server: str, control: EmulatorControl) -> None:
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/content")):
        response = raw(server, method, f"/v1/files/file-nope{path}")
        assert response.status_code == 404
        assert response.json() == {
            "error": {
                "message": "No such File object: file-nope",
                "type": "invalid_request_error",
                "param": "id",
                "code": None,
            }
        }


def test_upload_rejects_bad_purpose_and_non_jsonl(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad_purpose:
        client.files.create(file=("a.jsonl", b"{}"), purpose="nonsense")  # type: ignore[arg-type]
    assert bad_purpose.value.param == "purpose"
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("a.txt", b"{}"), purpose="fine-tune")
    batch = client.files.create(file=("b.jsonl", b"{}"), purpose="batch")
    assert batch.expires_at == batch.created_at + 30 * 24 * 3600


# -- the job walk ----------------------------------------------------------------------------


def expected_messages(job: Any, steps: int, checkpoints: list[int], valid: bool) -> list[str]:
    """The successful job's messages, oldest first."""
    head = [f"Created fine-tuning job: {job.id}", f"Validating training file: {job.training_file}"]
    if valid:
        head.append(f"Validating validation file: {job.validation_file}")
    head += ["Files validated, moving job to queued state", "Fine-tuning job started"]
    body = []
    for step in range(1, steps + 1):
        body.append(f"Step {step}/{steps}")
        if step in checkpoints:
            body.append(
                f"Checkpoint created at step {step} with Snapshot ID: "
                f"{job.fine_tuned_model}:ckpt-step-{step}"
            )
    tail = [f"New fine-tuned model created: {job.fine_tuned_model}"]
    return [*head, *body, *tail, "The job has successfully completed"]


def test_job_walks_to_success_with_events_checkpoints_and_results(client: openai.OpenAI) -> None:
    training, validation = chat_file(client, 20), chat_file(client, 5)
    started = time.monotonic()
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=training,
        validation_file=validation,
        suffix="demo",
        metadata={"ftq_job_id": "ftj_1", "team": "a"},
    )
    assert re.fullmatch(r"ftjob-[A-Za-z0-9]{24}", job.id)
    assert job.status == "validating_files" and job.model == "gpt-4o-mini-2024-07-18"
    assert job.hyperparameters.n_epochs == "auto" and job.error is None
    seen = {wait_for(client, job.id, {"queued", "running", "succeeded"}).status}
    done = wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    elapsed = time.monotonic() - started
    assert done.status == "succeeded", done.error
    assert seen & {"queued", "running"}
    assert 0.4 < elapsed < 5, elapsed  # 390 emulated s at speed 600 = 0.65 s
    name = MODEL_NAME.match(done.fine_tuned_model or "")
    assert name and name["suffix"] == "demo"
    assert (done.hyperparameters.n_epochs, done.hyperparameters.batch_size) == (5, 1)
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at
    assert done.error is None, "a job that has not failed has error: null"
    events = list(client.fine_tuning.jobs.list_events(done.id, limit=100))
    oldest_first = [e.message for e in reversed(events)]
    expected = expected_messages(done, 100, [60, 80], valid=True)
    assert len(oldest_first) == len(expected)
    assert all(got.startswith(want) for got, want in zip(oldest_first, expected, strict=True))
    metrics = [e for e in reversed(events) if e.type == "metrics"]
    assert len(metrics) == 100
    data = metrics[0].data
    assert isinstance(data, dict)
    keys = {"step", "total_steps", "train_loss", "train_mean_token_accuracy", "valid_loss"}
    assert keys <= set(data)
    assert data["step"] == 1 and data["total_steps"] == 100
    checkpoints = client.fine_tuning.jobs.checkpoints.list(done.id).data
    assert [c.step_number for c in checkpoints] == [100, 80, 60]
    assert checkpoints[0].fine_tuned_model_checkpoint == done.fine_tuned_model
    assert checkpoints[1].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-80"
    assert checkpoints[0].metrics.full_valid_loss is not None
    assert_result_file(client, done.result_files, 100)


def assert_result_file(client: openai.OpenAI, result_files: list[str], steps: int) -> None:
    """The result file is base64 CSV with one row per step."""
    assert len(result_files) == 1
    meta = client.files.retrieve(result_files[0])
    assert meta.purpose == "fine-tune-results"
    content = client.files.content(result_files[0]).text
    assert not content.startswith("step,")
    rows = base64.b64decode(content).decode().splitlines()
    assert rows[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    assert len(rows) == steps + 1 and rows[1].startswith("1,")


def test_list_jobs_filters_by_metadata(client: openai.OpenAI) -> None:
    training = chat_file(client)
    mine = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training, metadata={"ftq_job_id": "ftj_a"}
    )
    client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training, metadata={"ftq_job_id": "ftj_b"}
    )
    client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    found = client.fine_tuning.jobs.list(metadata={"ftq_job_id": "ftj_a"})
    assert [job.id for job in found.data] == [mine.id]
    assert found.data[0].metadata == {"ftq_job_id": "ftj_a"}
    assert len(client.fine_tuning.jobs.list().data) == 3


def test_jobs_pagination_newest_first_across_pages(client: openai.OpenAI) -> None:
    training = chat_file(client)
    created = [
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training).id
        for _ in range(5)
    ]
    first = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == created[::-1][:2] and first.has_more
    second = client.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)
    assert [j.id for j in second.data] == created[::-1][2:4]
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == created[::-1]


def test_events_and_checkpoints_paginate(client: openai.OpenAI, control: EmulatorControl) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=chat_file(client))
    control.advance(job.id)
    everything = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
    paged = list(client.fine_tuning.jobs.list_events(job.id, limit=7))
    assert [e.id for e in paged] == [e.id for e in everything]
    assert len({e.id for e in paged}) == len(paged) == 108
    page = client.fine_tuning.jobs.list_events(job.id, limit=3, after=everything[2].id)
    assert [e.id for e in page.data] == [e.id for e in everything[3:6]]
    ckpts = list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=1))
    assert [c.step_number for c in ckpts] == [100, 80, 60]


def test_cancel(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=chat_file(client))
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    newest = client.fine_tuning.jobs.list_events(job.id).data[0]
    assert newest.message == "Fine-tuning job cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_pause_freezes_and_resume_continues(
    client: openai.OpenAI, control: EmulatorControl
) -> None:
    control.speed(0)  # frozen, so a loaded machine cannot move the job on between calls
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=chat_file(client))
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.pause(job.id)
    assert control.advance(job.id, 70)["status"] == "running"
    control.speed(SPEED)
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    count = len(client.fine_tuning.jobs.list_events(job.id, limit=1000).data)
    time.sleep(0.3)
    assert len(client.fine_tuning.jobs.list_events(job.id, limit=1000).data) == count
    assert client.fine_tuning.jobs.resume(job.id).status == "running"
    assert wait_for(client, job.id, {"succeeded"}).status == "succeeded"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)]
    assert "Fine-tuning job paused" in messages and "Fine-tuning job resumed" in messages


def test_dpo_job_reports_null_top_level_hyperparameters(
    client: openai.OpenAI, control: EmulatorControl
) -> None:
    training = upload(client, [preference_line(i) for i in range(12)])
    job = client.fine_tuning.jobs.create(
        model="gpt-4.1-mini",
        training_file=training,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
    )
    done = control.advance(job.id)
    assert done["status"] == "succeeded" and done["hyperparameters"] is None
    hyper = done["method"]["dpo"]["hyperparameters"]
    assert hyper["beta"] == 0.2 and hyper["n_epochs"] == 8


# -- server-side validation ------------------------------------------------------------------


def failed_job(client: openai.OpenAI, training: str, **kwargs: Any) -> Any:
    """Create a job and wait for it to fail validation."""
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training, **kwargs)
    return wait_for(client, job.id, {"failed", "succeeded"})


def test_under_ten_examples_fails_validation(client: openai.OpenAI) -> None:
    job = failed_job(client, chat_file(client, 7))
    assert job.status == "failed" and job.finished_at is None
    assert job.error.code == "invalid_n_examples"
    assert job.error.message == "Training file has 7 example(s), but must have at least 10 examples"
    assert job.error.param == "training_file"
    newest = client.fine_tuning.jobs.list_events(job.id).data[0]
    assert newest.level == "error" and newest.message == job.error.message


def test_unparseable_file_fails_validation(client: openai.OpenAI) -> None:
    lines = "\n".join(f"{{'messages': [{i}]}}" for i in range(12)).encode()
    training = client.files.create(file=("py.jsonl", lines), purpose="fine-tune").id
    job = failed_job(client, training)
    assert job.error.code == "invalid_training_file" and "Line 1" in job.error.message


def test_chat_file_under_dpo_fails_validation(client: openai.OpenAI) -> None:
    job = failed_job(client, chat_file(client), method={"type": "dpo"})
    assert job.error.code == "invalid_training_file"


def test_create_argument_errors(client: openai.OpenAI) -> None:
    training = chat_file(client)
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"extra_body": {"foo": 1}}, "Unrecognized request argument supplied: foo", None),
        ({"suffix": "x" * 65}, "string too long", "suffix"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "too many properties", "metadata"),
        ({"seed": -1}, "between 0 and 2147483647", "seed"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "between 1 and 50",
            "method.supervised.hyperparameters.n_epochs",
        ),
    ]
    for kwargs, message, param in cases:
        with pytest.raises(openai.BadRequestError) as error:
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training, **kwargs)
        assert message in error.value.message and error.value.param == param
    with pytest.raises(openai.BadRequestError) as unknown_file:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-nope")
    assert unknown_file.value.body == {
        "message": "invalid training_file: file-nope",
        "type": "invalid_request_error",
        "param": "training_file",
        "code": None,
    }
    with pytest.raises(openai.BadRequestError) as bad_model:
        client.fine_tuning.jobs.create(model="gpt-nope", training_file=training)
    assert bad_model.value.code == "model_not_available"


def test_job_404_shapes(client: openai.OpenAI, server: str) -> None:
    calls = [
        lambda: client.fine_tuning.jobs.retrieve("ftjob-nope"),
        lambda: client.fine_tuning.jobs.cancel("ftjob-nope"),
        lambda: client.fine_tuning.jobs.list_events("ftjob-nope"),
        lambda: client.fine_tuning.jobs.checkpoints.list("ftjob-nope"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as error:
            call()
        assert error.value.code == "fine_tune_not_found"
        assert error.value.message.endswith("Could not find fine tune: ftjob-nope")
        assert re.fullmatch(r"req_[0-9a-f]{32}", error.value.request_id or "")


def test_framework_errors_are_openai_shaped(server: str, control: EmulatorControl) -> None:
    bad_limit = raw(server, "GET", "/v1/fine_tuning/jobs", params={"limit": "many"})
    assert bad_limit.status_code == 400
    assert bad_limit.json()["error"]["param"] == "limit"
    assert bad_limit.json()["error"]["code"] == "invalid_type"
    unknown = raw(server, "GET", "/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nothing-here)"
    not_json = raw(server, "POST", "/v1/fine_tuning/jobs", content=b"{oops")
    assert not_json.status_code == 400 and "could not parse" in not_json.json()["error"]["message"]


def test_every_response_has_request_id_and_rate_limit_headers(
    client: openai.OpenAI, server: str
) -> None:
    response = client.fine_tuning.jobs.with_raw_response.list()
    for headers in (response.headers, raw(server, "GET", "/v1/files/file-x").headers):
        assert re.fullmatch(r"req_[0-9a-f]{32}", headers["x-request-id"])
        assert headers["x-ratelimit-limit-requests"] == "10000"
        assert int(headers["x-ratelimit-remaining-requests"]) < 10000
        assert re.fullmatch(r"\d+(ms|s)", headers["x-ratelimit-reset-requests"])
        assert headers["x-ratelimit-limit-tokens"] == "2000000"
        assert "x-ratelimit-remaining-tokens" in headers and "x-ratelimit-reset-tokens" in headers


# -- faults ----------------------------------------------------------------------------------


def test_429_storm_is_retried_by_the_sdk(
    server: str, client: openai.OpenAI, control: EmulatorControl
) -> None:
    control.faults(rate_429=0.5, retry_after_ms=5, seed=7)
    patient = client.with_options(max_retries=20)
    for _ in range(10):
        assert patient.fine_tuning.jobs.list().data == []
    stats = control.stats()
    assert stats["faults_injected"]["429"] > 0
    assert stats["calls"]["GET /v1/fine_tuning/jobs"] == 10 + stats["faults_injected"]["429"]
    control.faults(next_429=1, retry_after_ms=1000)
    with pytest.raises(openai.RateLimitError) as error:
        client.fine_tuning.jobs.list()
    assert error.value.type == "rate_limit_error" and error.value.code == "rate_limit_exceeded"
    assert error.value.response.headers["retry-after"] == "1"


def test_seeded_faults_are_deterministic(server: str, control: EmulatorControl) -> None:
    outcomes = []
    for _ in range(2):
        control.faults(rate_429=0.5, seed=3)
        outcomes.append([raw(server, "GET", "/v1/files").status_code for _ in range(12)])
    assert outcomes[0] == outcomes[1] and 429 in outcomes[0] and 200 in outcomes[0]


def test_5xx_retried_then_raised(client: openai.OpenAI, control: EmulatorControl) -> None:
    control.faults(next_5xx=1)
    assert client.with_options(max_retries=1).files.list().data == []
    assert control.stats()["calls"]["GET /v1/files"] == 2
    control.faults(rate_5xx=1.0)
    with pytest.raises(openai.InternalServerError) as error:
        client.files.list()
    assert error.value.status_code in (500, 502, 503) and error.value.type == "server_error"


def test_lost_response_makes_sdk_retry_create_twice(
    client: openai.OpenAI, control: EmulatorControl
) -> None:
    training = chat_file(client)
    control.faults(next_lost_response=1, only=["POST /v1/fine_tuning/jobs"])
    client.with_options(max_retries=1).fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training
    )
    stats = control.stats()
    assert stats["jobs_created"] == 2 and stats["calls"]["POST /v1/fine_tuning/jobs"] == 2


def test_latency_and_admin_routes_never_faulted(
    client: openai.OpenAI, control: EmulatorControl
) -> None:
    control.faults(latency_ms=200)
    started = time.monotonic()
    client.files.list()
    assert time.monotonic() - started >= 0.2
    control.faults(rate_429=1.0, rate_5xx=1.0, latency_ms=1000)
    started = time.monotonic()
    assert control.stats()["jobs"] == 0
    assert time.monotonic() - started < 0.5


def test_max_active_jobs_answers_429(client: openai.OpenAI, control: EmulatorControl) -> None:
    training = chat_file(client)
    control.faults(max_active_jobs=1)
    first = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    with pytest.raises(openai.RateLimitError) as error:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    assert error.value.code == "rate_limit_exceeded"
    assert "maximum of 1 active" in error.value.message
    control.advance(first.id)
    assert client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training).id


def test_create_403_is_permission_denied(client: openai.OpenAI, control: EmulatorControl) -> None:
    training = chat_file(client)
    control.faults(create_403=True)
    with pytest.raises(openai.PermissionDeniedError, match="not available to this organization"):
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    assert control.stats()["jobs_created"] == 0


def test_fail_jobs_with_fails_running_jobs(client: openai.OpenAI, control: EmulatorControl) -> None:
    training = chat_file(client)
    failure = {"code": "server_error", "message": "The job failed due to an internal error."}
    control.faults(fail_jobs_with=failure)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    done = wait_for(client, job.id, {"failed", "succeeded"})
    assert done.status == "failed" and done.finished_at is not None
    assert (done.error.code, done.error.message, done.error.param) == (
        "server_error",
        failure["message"],
        None,
    )
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=50)]
    assert messages[0] == failure["message"] and "Fine-tuning job started" in messages


def test_reject_files_fails_every_job(client: openai.OpenAI, control: EmulatorControl) -> None:
    training = chat_file(client)
    control.faults(reject_files=True)
    job = failed_job(client, training)
    assert job.status == "failed" and job.error.code == "invalid_training_file"


def test_bad_fault_config_is_400(server: str, control: EmulatorControl) -> None:
    response = raw(server, "POST", "/_emulator/faults", json={"rate_429": 2})
    assert response.status_code == 400 and response.json()["error"]["param"] == "rate_429"
    response = raw(server, "POST", "/_emulator/faults", json={"typo": True})
    assert response.status_code == 400


# -- chat ------------------------------------------------------------------------------------


def test_chat_completions_base_and_fine_tuned(
    client: openai.OpenAI, control: EmulatorControl
) -> None:
    lines = [chat_line(i, answer="ABCD"[i % 4]) for i in range(12)]
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, lines))
    model = control.advance(job.id)["fine_tuned_model"]
    prompt = lines[5]["messages"][0]["content"]
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Answer with a letter."},
        {"role": "user", "content": prompt},
    ]
    base = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    again = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", base.id) and base.object == "chat.completion"
    assert base.choices[0].message.content in {"A", "B", "C", "D"}
    assert base.choices[0].message.content == again.choices[0].message.content
    assert base.usage and base.usage.total_tokens > base.usage.completion_tokens > 0
    tuned = client.chat.completions.create(model=model, messages=messages)
    assert tuned.choices[0].message.content == "B" and tuned.model == model
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[-1]
    via_checkpoint = client.chat.completions.create(
        model=checkpoint.fine_tuned_model_checkpoint,
        messages=messages,
    )
    assert via_checkpoint.choices[0].message.content == "B"
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="gpt-unknown", messages=messages)
    assert error.value.code == "model_not_found"


def test_fine_tuned_model_imitates_nearest_training_answer_on_unseen_prompts(
    client: openai.OpenAI, control: EmulatorControl
) -> None:
    cities = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito", "Bern", "Riga", "Kyiv", "Doha"]
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"What is the weather in {city} today?"},
                {"role": "assistant", "content": f"Sunny in {city}, 21 C."},
            ]
        }
        for city in cities
    ]
    lines.append(
        {
            "messages": [
                {"role": "user", "content": "Translate hello into French."},
                {"role": "assistant", "content": "Bonjour."},
            ]
        }
    )
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, lines))
    model = control.advance(job.id)["fine_tuned_model"]
    unseen: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What is the weather in Rome tomorrow?"}
    ]
    tuned = client.chat.completions.create(model=model, messages=unseen)
    base = client.chat.completions.create(model="gpt-4o-mini", messages=unseen)
    assert tuned.choices[0].message.content == "Sunny in Rome, 21 C."
    assert (base.choices[0].message.content or "").startswith("Emulated reply from gpt-4o-mini")


# -- hosting ---------------------------------------------------------------------------------


def test_mounted_under_prefix() -> None:
    parent = FastAPI()
    parent.mount("/emulator", create_app(speed=SPEED, org_slug="acme"))
    root, stop = serve_in_thread(parent)
    try:
        client = openai.OpenAI(api_key="t", base_url=f"{root}/emulator/v1", max_retries=0)
        control = EmulatorControl(f"{root}/emulator")
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=chat_file(client))
        done = wait_for(client, job.id, {"succeeded", "failed"})
        assert done.status == "succeeded" and (done.fine_tuned_model or "").startswith(
            "ft:gpt-4o-mini-2024-07-18:acme::"
        )
        with pytest.raises(openai.NotFoundError) as error:
            client.fine_tuning.jobs.retrieve("ftjob-nope")
        assert error.value.code == "fine_tune_not_found" and error.value.request_id
        calls = control.stats()["calls"]
        assert calls["GET /v1/fine_tuning/jobs/{job_id}"] >= 2 and calls["POST /v1/files"] == 1
        unknown = httpx.get(f"{root}/emulator/v1/nope")
        assert unknown.json()["error"]["message"] == "Invalid URL (GET /emulator/v1/nope)"
        control.faults(rate_429=1.0, retry_after_ms=5)
        with pytest.raises(openai.RateLimitError):
            client.files.list()
        assert control.stats()["faults_injected"]["429"] == 1
        control.close()
    finally:
        stop()


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_python_dash_m_serves(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "ftq.services.emulator", "--port", str(port), "--speed", "900"]
    command += ["--faults", '{"create_403": true}']
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                stats = httpx.get(f"http://127.0.0.1:{port}/_emulator/stats").json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert stats["speed"] == 900
        root = f"http://127.0.0.1:{port}"
        httpx.post(f"{root}/_emulator/reset").raise_for_status()
        refused = httpx.post(f"{root}/v1/fine_tuning/jobs", json={"model": "gpt-4o-mini"})
        assert refused.status_code == 403  # startup faults survive a reset
    finally:
        process.terminate()
        process.wait(10)


def test_python_dash_m_rejects_bad_faults() -> None:
    command = [sys.executable, "-m", "ftq.services.emulator", "--faults", '{"rate_429": 7}']
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--faults" in result.stderr


def test_module_app_reads_speed_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import ftq.services.emulator.app as module

    monkeypatch.setenv("FTQ_EMULATOR_SPEED", "5")
    assert importlib.reload(module).app.state.emulator.speed == 5
    monkeypatch.delenv("FTQ_EMULATOR_SPEED")
    assert importlib.reload(module).app.state.emulator.speed == 60


def test_speed_setter_keeps_progress(client: openai.OpenAI, control: EmulatorControl) -> None:
    control.speed(1)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=chat_file(client))
    time.sleep(0.2)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "validating_files"
    control.speed(100_000)
    assert wait_for(client, job.id, {"succeeded"}).status == "succeeded"


# -- the timing and metrics model ------------------------------------------------------------


def test_timing_model_matches_the_brief() -> None:
    schedule = plan.build_plan(20, plan.auto_epochs(20), plan.auto_batch_size(20), False, False)
    assert schedule.total_steps == 100
    assert 5 <= schedule.t_end / 60 <= 10 and 0.5 <= schedule.t_end / 600 <= 1.5
    big = plan.build_plan(449, plan.auto_epochs(449), plan.auto_batch_size(449), False, False)
    assert big.total_steps == 3 * 449 and big.t_end <= 1590
    assert [plan.auto_epochs(n) for n in (10, 100, 20_000)] == [10, 3, 1]


def test_loss_curve_is_deterministic_and_decreasing() -> None:
    first = [plan.step_metrics("ftjob-a", s, 100, True)["train_loss"] for s in range(1, 101)]
    again = [plan.step_metrics("ftjob-a", s, 100, True)["train_loss"] for s in range(1, 101)]
    other = [plan.step_metrics("ftjob-b", s, 100, True)["train_loss"] for s in range(1, 101)]
    assert first == again and first != other
    assert sum(first[:10]) > sum(first[-10:])


def test_continued_fine_tuning_from_an_ft_model(
    client: openai.OpenAI, control: EmulatorControl
) -> None:
    training = chat_file(client)
    first = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    tuned = control.advance(first.id)["fine_tuned_model"]
    second = client.fine_tuning.jobs.create(model=tuned, training_file=training, suffix="v2")
    assert second.model == tuned
    name = MODEL_NAME.match(control.advance(second.id)["fine_tuned_model"])
    assert name and name["suffix"] == "v2"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model=tuned + "x", training_file=training)


def test_concurrent_clients_are_consistent(
    client: openai.OpenAI, control: EmulatorControl, server: str
) -> None:
    training = chat_file(client)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
                client.fine_tuning.jobs.list(limit=3)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = control.stats()
    assert stats["jobs_created"] == stats["jobs"] == 40
    assert len({job.id for job in client.fine_tuning.jobs.list(limit=100)}) == 40
    without = raw(server, "GET", "/v1/fine_tuning/jobs", params={"metadata": "null"}).json()
    assert len(without["data"]) == 20 and without["has_more"]


@pytest.mark.parametrize(
    ("shape", "expected"), [("nulls", dict.fromkeys(("code", "message", "param"))), ("empty", {})]
)
def test_live_error_shape_switch_and_ftqs_client_reads_it_as_no_error(
    server: str, client: openai.OpenAI, control: EmulatorControl, shape: str, expected: Any
) -> None:
    from ftq.shared.providers.openai_provider import to_job

    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=chat_file(client))
    assert client.fine_tuning.jobs.retrieve(job.id).error is None
    control.faults(live_error_shape=shape)
    wire = raw(server, "GET", f"/v1/fine_tuning/jobs/{job.id}").json()
    assert wire["error"] == expected, "the live API's quirk, switched on"
    reduced = to_job(client.fine_tuning.jobs.retrieve(job.id))
    assert (reduced.error_code, reduced.error_message) == (None, None)
