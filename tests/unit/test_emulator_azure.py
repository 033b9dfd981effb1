"""The emulator serves the SDK's own AzureOpenAI client under `/openai`, as Azure OpenAI does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from fastapi import FastAPI

from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

API_VERSION = "2025-04-01-preview"
LINES = [
    {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
    for i in range(12)
]
TRAINING = "\n".join(json.dumps(line) for line in LINES).encode()


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    """One emulator for the module."""
    url, stop = serve_in_thread(create_app(speed=600.0))
    yield url
    stop()


@pytest.fixture
def control(root: str) -> Iterator[EmulatorControl]:
    """Admin controls on a reset emulator."""
    ctl = EmulatorControl(root)
    ctl.reset()
    yield ctl
    ctl.close()


def azure(
    root: str, api_key: str | None = None, azure_ad_token: str | None = None
) -> openai.AzureOpenAI:
    """The SDK's Azure client pointed at the emulator, with a key or an Entra ID token."""
    return openai.AzureOpenAI(
        azure_endpoint=root,
        api_version=API_VERSION,
        api_key=api_key,
        azure_ad_token=azure_ad_token,
        max_retries=0,
    )


def test_azure_client_with_key_runs_a_whole_job(root: str, control: EmulatorControl) -> None:
    client = azure(root, api_key="azure-key-123")
    training = client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training.id, metadata={"ftq_job_id": "ftj_az"}
    )
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"ftq_job_id": "ftj_az"})] == [
        job.id
    ]
    control.advance(job.id)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.fine_tuned_model
    assert client.fine_tuning.jobs.list_events(job.id).data[0].message.startswith("The job has")
    assert len(client.fine_tuning.jobs.checkpoints.list(job.id).data) == 3
    answer = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "q3"}]
    )
    assert answer.choices[0].message.content == "a"
    with pytest.raises(openai.NotFoundError) as missing:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert missing.value.code == "fine_tune_not_found"

    log = control.requests()
    assert {entry["api"] for entry in log} == {"azure"}
    assert all(entry["auth"] == "api-key" for entry in log)
    assert all(entry["query"]["api-version"] == API_VERSION for entry in log)
    paths = {entry["path"] for entry in log}
    assert "/openai/files" in paths and f"/openai/fine_tuning/jobs/{job.id}" in paths
    assert f"/openai/deployments/{done.fine_tuned_model}/chat/completions" in paths
    listing = next(
        e for e in log if e["path"] == "/openai/fine_tuning/jobs" and e["method"] == "GET"
    )
    assert listing["query"]["metadata[ftq_job_id]"] == "ftj_az"
    assert "azure-key-123" not in json.dumps(log)
    assert control.stats()["calls"]["POST /openai/fine_tuning/jobs"] == 1


def test_azure_client_with_entra_token_sends_bearer(root: str, control: EmulatorControl) -> None:
    client = azure(root, azure_ad_token="entra-token")
    assert client.fine_tuning.jobs.list().data == []
    (entry,) = control.requests()
    assert (entry["auth"], entry["route"], entry["status"]) == (
        "bearer",
        "GET /openai/fine_tuning/jobs",
        200,
    )


def test_azure_routes_need_api_version_and_a_credential(
    root: str, control: EmulatorControl
) -> None:
    no_version = httpx.get(f"{root}/openai/files", headers={"api-key": "k"})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["param"] == "api-version"
    assert no_version.headers["x-request-id"].startswith("req_")
    bad_version = httpx.get(f"{root}/openai/files?api-version=latest", headers={"api-key": "k"})
    assert bad_version.status_code == 400
    no_key = httpx.get(f"{root}/openai/files", params={"api-version": API_VERSION})
    assert no_key.status_code == 401
    statuses = [entry["status"] for entry in control.requests()]
    assert statuses == [401, 400, 400]


def test_openai_client_request_shape_is_logged(root: str, control: EmulatorControl) -> None:
    client = openai.OpenAI(
        api_key="sk-secret", base_url=f"{root}/v1", organization="org-abc", max_retries=0
    )
    client.fine_tuning.jobs.list(limit=5)
    (entry,) = control.requests()
    assert entry["api"] == "openai" and entry["auth"] == "bearer"
    assert entry["organization"] == "org-abc" and entry["query"] == {"limit": "5"}
    assert "sk-secret" not in json.dumps(entry)


def test_faults_apply_to_azure_routes_too(root: str, control: EmulatorControl) -> None:
    control.faults(next_429=1, retry_after_ms=5, only=["GET /v1/files"])
    client = azure(root, api_key="k")
    with pytest.raises(openai.RateLimitError):
        client.files.list()
    assert client.files.list().data == []


def test_azure_routes_work_when_mounted() -> None:
    parent = FastAPI()
    parent.mount("/emulator", create_app(speed=600.0))
    root, stop = serve_in_thread(parent)
    try:
        client = azure(f"{root}/emulator", api_key="k")
        uploaded = client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")
        assert client.files.retrieve(uploaded.id).bytes == len(TRAINING)
        control = EmulatorControl(f"{root}/emulator")
        assert [e["path"] for e in control.requests()] == [
            f"/openai/files/{uploaded.id}",
            "/openai/files",
        ]
        control.close()
    finally:
        stop()
