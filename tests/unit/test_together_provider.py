"""The `together` provider: its mappings, its calls through the real SDK, and its checks.

The SDK talks to a small in-memory stand-in for Together's HTTP API (an httpx MockTransport), so
every request body and parsed answer is the SDK's own; the end-to-end tests run against the
emulator (tests/e2e/test_together_e2e.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from together import Together

from ftq.shared import catalog
from ftq.shared.datasets import service as datasets
from ftq.shared.datasets.validation import validate_file
from ftq.shared.jobs import failover, sync
from ftq.shared.jobs.schemas import Hyperparameters, JobCreate, Method
from ftq.shared.providers.base import (
    JobSpec,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnavailable,
)
from ftq.shared.providers.plugins import Credential
from ftq.shared.providers.registry import get_plugin
from ftq.shared.providers.together import mapping
from ftq.shared.providers.together.plugin import TOGETHER
from ftq.shared.providers.together.provider import TogetherProvider
from ftq.shared.settings import Settings, reset_settings
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
JOB_ID = "ftj_0mx7s8duwt1owltsvv8wc"
ROOT = "http://together.test"


# -- a stand-in for Together's HTTP API ------------------------------------------------------------


@dataclass
class FakeTogether:
    """Together's routes as the SDK calls them, in memory, with a request log and faults."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checkpoints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    log: list[tuple[str, str, Any]] = field(default_factory=list)
    faults: list[httpx.Response] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (a queued fault first)."""
        body = _body(request)
        self.log.append((request.method, request.url.path, body))
        if self.faults:
            return self.faults.pop(0)
        return self._route(request, request.url.path.split("/")[2:], body)

    def _route(self, request: httpx.Request, parts: list[str], body: Any) -> httpx.Response:
        method = request.method
        if parts[0] == "upload":
            self.files[parts[1]]["bytes"] = len(request.read())
            return httpx.Response(200)
        if parts[0] == "files":
            return self._files(method, parts[1:])
        if parts[:2] == ["fine-tunes", "models"]:
            return _json(LIMITS)
        if parts[:2] == ["fine-tunes", "estimate-price"]:
            return _json({"estimation_available": True, "allowed_to_proceed": True})
        if parts[0] == "fine-tunes":
            return self._jobs(method, parts[1:], body, request.url.params)
        if parts[0] == "chat":
            return _json(_completion(body))
        return httpx.Response(404, json={"error": {"message": "no route"}})

    def _files(self, method: str, parts: list[str]) -> httpx.Response:
        if method == "GET" and not parts:
            return _json({"data": list(reversed(self.files.values()))})
        if method == "POST" and not parts:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = _file(file_id, self._announced())
            headers = {"Location": f"{ROOT}/v1/upload/{file_id}", "X-Together-File-Id": file_id}
            return httpx.Response(302, headers=headers)
        if parts[0] not in self.files:
            return httpx.Response(404, json={"error": {"message": f"no file {parts[0]}"}})
        if parts[-1] == "content":
            return httpx.Response(200, content=b'{"text": "x"}\n')
        return _json(self.files[parts[0]])

    def _announced(self) -> str:
        """The filename of the multipart announce the SDK just sent."""
        return str(self.log[-1][2].get("file_name"))

    def _jobs(self, method: str, parts: list[str], body: Any, params: Any) -> httpx.Response:
        if method == "POST" and not parts:
            job_id = f"ft-{len(self.jobs) + 1}"
            self.jobs[job_id] = _job(job_id, body)
            return _json(self.jobs[job_id])
        if not parts:
            return _json({"data": list(self.jobs.values())})
        job = self.jobs.get(parts[0])
        if job is None:
            return httpx.Response(404, json={"error": {"message": f"no job {parts[0]}"}})
        tail = parts[1] if len(parts) > 1 else ""
        if tail == "cancel":
            job["status"] = "cancel_requested"
            return _json(job)
        if tail == "events":
            return _json({"data": self.events.get(job["id"], [])})
        if tail == "metrics":
            start = int(params.get("global_step_from", 0))
            rows = [r for r in self.metrics.get(job["id"], []) if _step(r) >= start]
            return _json({"metrics": rows})
        if tail == "checkpoints":
            return _json({"data": self.checkpoints.get(job["id"], [])})
        return _json(job)

    def creates(self) -> list[dict[str, Any]]:
        """The bodies of every job create."""
        return [body for method, path, body in self.log if (method, path) == CREATE]


CREATE = ("POST", "/v1/fine-tunes")
LIMITS = {
    "model_name": MODEL,
    "default_gradient_accumulation_steps": 1,
    "lora_training": {
        "default_rank": 8,
        "max_batch_size": 32,
        "max_batch_size_dpo": 16,
        "max_rank": 64,
        "min_batch_size": 8,
        "target_modules": ["q_proj", "v_proj"],
    },
    "full_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8},
    "max_learning_rate": 1.0,
    "min_learning_rate": 1e-8,
    "max_num_checkpoints": 10,
    "max_num_epochs": 20,
    "max_num_evals": 10,
    "max_seq_length_dpo": 8192,
    "max_seq_length_sft": 131072,
    "merge_output_lora": True,
    "min_max_seq_length": 128,
    "supports_full_training": True,
    "supports_reasoning": False,
    "supports_tools": True,
    "supports_vision": False,
}


def _body(request: httpx.Request) -> Any:
    raw = request.read()
    if request.headers.get("content-type", "").startswith("application/json") and raw:
        return json.loads(raw)
    if b"form-data" in request.headers.get("content-type", "").encode():
        return {"file_name": raw.split(b'name="file_name"\r\n\r\n')[1].split(b"\r\n")[0].decode()}
    return None


def _json(data: Any) -> httpx.Response:
    return httpx.Response(200, json=data)


def _file(file_id: str, filename: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": 0,
        "created_at": 1_700_000_000 + int(file_id.split("-")[1]),
        "filename": filename,
        "FileType": "jsonl",
        "purpose": "fine-tune",
        "processing_status": "COMPLETED",
    }


def _job(job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    number = int(job_id.split("-")[1])
    return {
        "id": job_id,
        "status": "pending",
        "user_id": "user-1",
        "model": body.get("model"),
        "suffix": body.get("suffix"),
        "model_output_name": f"acme/{body.get('model')}-{body.get('suffix')}-a1b2c3",
        "created_at": f"2026-11-0{number}T10:00:00Z",
        "updated_at": f"2026-11-0{number}T10:00:00Z",
        "token_count": 1234,
    }


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chat-1",
        "object": "chat.completion",
        "created": 1,
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def _step(row: dict[str, Any]) -> int:
    return int(row.get("train/global_step", row.get("eval/global_step", 0)))


@pytest.fixture
def fake() -> FakeTogether:
    """An empty Together."""
    return FakeTogether()


@pytest.fixture
def provider(fake: FakeTogether) -> TogetherProvider:
    """The provider on the real SDK, answered by the fake."""
    client = Together(
        api_key="k",
        base_url=ROOT,
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(fake.handle)),
    )
    return TogetherProvider(client)


def _spec(**hyperparameters: Any) -> JobSpec:
    kind = hyperparameters.pop("kind", "supervised")
    method = Method.model_validate({"type": kind, "hyperparameters": hyperparameters})
    return JobSpec(
        ftq_job_id=JOB_ID,
        model=MODEL,
        training_file="file-1",
        method=method.to_provider("together"),
        suffix="support",
    )


# -- statuses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "provider_status", "ftq_status"),
    [
        ("pending", "queued", "submitted"),
        ("queued", "queued", "submitted"),
        ("running", "running", "running"),
        ("compressing", "running", "running"),
        ("uploading", "running", "running"),
        ("cancel_requested", "running", "running"),
        ("cancelled", "cancelled", "cancelled"),
        ("error", "failed", "failed"),
        ("user_error", "failed", "failed"),
        ("completed", "succeeded", "succeeded"),
    ],
)
def test_every_together_status_maps_onto_ftqs(
    raw: str, provider_status: str, ftq_status: str
) -> None:
    job = mapping.to_job(_sdk_job(status=raw))
    assert (job.status, job.raw_status) == (provider_status, raw)
    assert sync.PROVIDER_TO_STATUS[job.status] == ftq_status
    assert raw in job.fingerprint, "a move between raw statuses is noticed"
    assert (job.status == "succeeded") == bool(job.result_files)


def _sdk_job(**fields: Any) -> Any:
    from together.types.finetune_response import FinetuneResponse

    body = {"id": "ft-1", "status": "running", "user_id": "u", **fields}
    return FinetuneResponse.construct(**body)


def test_a_failed_job_carries_the_last_error_events_message() -> None:
    events = [
        {
            "object": "fine-tune-event",
            "created_at": "2026-11-01T10:00:00Z",
            "type": "job_start",
            "message": "Job started",
        },
        {
            "object": "fine-tune-event",
            "created_at": "2026-11-01T10:01:00Z",
            "type": "job_error",
            "level": "error",
            "message": "CUDA out of memory at step 3",
        },
    ]
    from together.types.finetune_response import FinetuneResponse

    job = mapping.to_job(
        FinetuneResponse.model_validate(
            {
                "id": "ft-1",
                "status": "error",
                "user_id": "u",
                "events": events,
                "updated_at": "2026-11-01T10:01:00Z",
            }
        )
    )
    assert (job.status, job.error_code) == ("failed", "error")
    assert job.error_message == "CUDA out of memory at step 3"
    assert job.finished_at == 1_793_527_260, "a finished job's last update"


# -- our id in the suffix ------------------------------------------------------------------------


def test_the_suffix_carries_our_id_within_togethers_40_characters() -> None:
    suffix = mapping.suffix_for(JOB_ID, "My support bot, v2 (EU)!")
    assert suffix == "My-support-bot-ftj-0mx7s8duwt1owltsvv8wc"
    assert len(suffix) == mapping.SUFFIX_LIMIT
    assert mapping.suffix_for(JOB_ID, None) == "ftj-0mx7s8duwt1owltsvv8wc"
    assert mapping.suffix_for(JOB_ID, "!!!") == "ftj-0mx7s8duwt1owltsvv8wc"
    assert mapping.job_id_in(suffix) == JOB_ID
    output = f"acme/{MODEL}-{suffix}-a1b2c3"
    assert mapping.job_id_in(None, output) == JOB_ID, "found in the output name too"
    fake_tag = "ftj-aaaaaaaaaaaaaaaaaaaaa"
    assert mapping.job_id_in(f"{fake_tag}-ftj-0mx7s8duwt1owltsvv8wc") == JOB_ID, "ours is last"
    assert mapping.job_id_in("plain-suffix", None) is None


# -- hyperparameters -----------------------------------------------------------------------------


def test_ftqs_hyperparameters_map_onto_togethers_create_arguments() -> None:
    arguments = mapping.create_arguments(
        _spec(
            n_epochs=3,
            batch_size=16,
            learning_rate_multiplier=2.0,
            lora_rank=16,
            lora_alpha=32,
            lora_dropout=0.05,
            lora_target_modules=["q_proj", "v_proj"],
            n_checkpoints=2,
            n_evals=4,
            warmup_ratio=0.1,
            max_grad_norm=0.5,
            weight_decay=0.01,
            lr_scheduler_type="linear",
        )
    )
    assert arguments == {
        "training_file": "file-1",
        "model": MODEL,
        "suffix": "support-ftj-0mx7s8duwt1owltsvv8wc",
        "training_method": "sft",
        "train_on_inputs": "auto",
        "n_epochs": 3,
        "batch_size": 16,
        "learning_rate": pytest.approx(2e-5),
        "lora": True,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_trainable_modules": "q_proj,v_proj",
        "n_checkpoints": 2,
        "n_evals": 4,
        "warmup_ratio": 0.1,
        "max_grad_norm": 0.5,
        "weight_decay": 0.01,
        "lr_scheduler_type": "linear",
    }


def test_auto_leaves_togethers_defaults_and_dpo_takes_beta() -> None:
    plain = mapping.create_arguments(_spec())
    assert plain["batch_size"] == "max"
    assert not {"n_epochs", "learning_rate", "lora", "dpo_beta"} & set(plain)
    dpo = mapping.create_arguments(_spec(kind="dpo", beta=0.2, rpo_alpha=0.5))
    assert (dpo["training_method"], dpo["dpo_beta"], dpo["rpo_alpha"]) == ("dpo", 0.2, 0.5)
    assert "train_on_inputs" not in dpo, "an SFT-only option"
    full = mapping.create_arguments(_spec(lora=False, learning_rate=3e-5))
    assert (full["lora"], full["learning_rate"]) == (False, 3e-5)


def test_from_checkpoint_replaces_the_model_and_the_seed_is_togethers_random_seed() -> None:
    spec = _spec(from_checkpoint="ft-1:10")
    arguments = mapping.create_arguments(
        JobSpec(**{**spec.__dict__, "seed": 7, "validation_file": "file-2"})
    )
    assert arguments["from_checkpoint"] == "ft-1:10" and "model" not in arguments
    assert (arguments["random_seed"], arguments["validation_file"]) == (7, "file-2")


def test_hyperparameter_checks_name_the_conflict() -> None:
    with pytest.raises(ValueError, match="learning_rate or learning_rate_multiplier"):
        Hyperparameters(learning_rate=1e-4, learning_rate_multiplier=2.0)
    with pytest.raises(ValueError, match="lora false"):
        Hyperparameters(lora=False, lora_rank=8)
    with pytest.raises(ValueError):
        Hyperparameters(warmup_ratio=1.5)
    assert Method().to_provider("openai")["supervised"]["hyperparameters"] == {
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }, "unset Together options reach no provider"


def test_the_plugin_takes_ftqs_and_togethers_options_and_openai_does_not() -> None:
    together = get_plugin("together").capabilities
    for name in ("n_checkpoints", "lora_rank", "train_on_inputs", "beta", "from_checkpoint"):
        assert together.takes(name), name
    assert not get_plugin("openai").capabilities.takes("n_checkpoints")
    fields = set(Hyperparameters.model_fields)
    assert together.hyperparameters <= fields, "every option it takes is a request field"
    assert {"lora", "full"} == set(together.tuning)
    assert together.credential_fields == ("api_key", "base_url")


# -- the provider through the SDK ----------------------------------------------------------------


def test_upload_keeps_our_filename_and_a_retry_finds_it(
    provider: TogetherProvider, fake: FakeTogether, tmp_path: Path
) -> None:
    blob = tmp_path / "blob-without-a-name"
    blob.write_bytes(chat_jsonl(3))
    name = "ftq-ds_abc-units.jsonl"
    file_id = provider.upload_file(blob, name)
    assert fake.files[file_id]["filename"] == name
    assert fake.files[file_id]["bytes"] == blob.stat().st_size
    assert provider.find_file(name, blob.stat().st_size) == file_id
    assert provider.find_file(name, 1) is None, "same name, other size: another file"
    assert provider.file_exists(file_id) and not provider.file_exists("file-404")


def test_create_is_found_again_by_our_id(provider: TogetherProvider, fake: FakeTogether) -> None:
    assert provider.find_job(JOB_ID) is None
    created = provider.create_job(_spec(n_epochs=2))
    assert (created.status, created.raw_status) == ("queued", "pending")
    assert created.ftq_job_id == JOB_ID
    assert fake.creates()[0]["suffix"] == "support-ftj-0mx7s8duwt1owltsvv8wc"
    found = provider.find_job(JOB_ID)
    assert found is not None and found.id == created.id
    assert provider.get_job(created.id).fine_tuned_model == created.fine_tuned_model
    assert provider.find_job("ftj_zzzzzzzzzzzzzzzzzzzzz") is None


def test_the_sdks_own_checks_reject_before_any_create(
    provider: TogetherProvider, fake: FakeTogether
) -> None:
    with pytest.raises(ProviderRejected, match="batch size of 64 is higher"):
        provider.create_job(_spec(batch_size=64, lora_rank=8))
    assert fake.creates() == []


def test_jobs_are_listed_newest_first_in_pages(
    provider: TogetherProvider, fake: FakeTogether
) -> None:
    ids = [provider.create_job(_spec()).id for _ in range(3)]
    first = provider.list_jobs(limit=2)
    assert [job.id for job in first.jobs] == ids[::-1][:2] and first.has_more
    rest = provider.list_jobs(after=first.jobs[-1].id, limit=2)
    assert [job.id for job in rest.jobs] == [ids[0]] and not rest.has_more


def _event(minute: int, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "object": "fine-tune-event",
        "created_at": f"2026-11-01T10:{minute:02d}:00Z",
        "type": kind,
        "level": "info",
        "message": message,
        **extra,
    }


def test_events_then_metrics_steps_follow_the_cursor(
    provider: TogetherProvider, fake: FakeTogether
) -> None:
    job_id = provider.create_job(_spec()).id
    fake.events[job_id] = [
        _event(0, "job_start", "Job started"),
        _event(1, "training_start", "Training started", total_steps=4),
    ]
    fake.metrics[job_id] = [
        {"train/global_step": 1, "train/loss": 2.5, "train/learning_rate": 1e-5},
        {"train/global_step": 2, "train/loss": 2.0},
        {"eval/global_step": 2, "eval/loss": 2.2},
    ]
    first = provider.events_after(job_id, None)
    assert [e.message for e in first[:2]] == ["Job started", "Training started"]
    assert first[1].data == {"together_type": "training_start", "total_steps": 4}
    assert first[0].id.startswith("tev-") and first[0].id != first[1].id
    steps = [e for e in first if e.type == "metrics"]
    assert [e.data for e in steps] == [
        {"step": 1, "train_loss": 2.5, "total_steps": 4},
        {"step": 2, "train_loss": 2.0, "valid_loss": 2.2, "total_steps": 4},
    ]
    assert steps[1].message == "Step 2/4: training loss=2.0000, validation loss=2.2000"
    assert first[-1].id == "tm-2", "the cursor lands on the metrics"
    assert provider.events_after(job_id, None)[0].id == first[0].id, "ids are stable"

    fake.events[job_id].append(_event(2, "checkpoint_save", "Checkpoint saved", step=2))
    fake.metrics[job_id].append({"train/global_step": 3, "train/loss": 1.5})
    second = provider.events_after(job_id, "tm-2")
    assert [e.id for e in second if e.type == "metrics"] == ["tm-2", "tm-3"]
    assert fake.log[-1][1].endswith("/metrics"), "metrics read from the cursor step on"
    tev = [e for e in second if e.type == "message"]
    assert len(tev) == 3, "Together's events are read whole (the stored ones are skipped by id)"
    only_new = provider.events_after(job_id, tev[1].id)
    assert [e.message for e in only_new if e.type == "message"] == ["Checkpoint saved"]


def test_events_and_metrics_are_stored_once_as_ftqs(
    provider: TogetherProvider, fake: FakeTogether, session: Session
) -> None:
    from ftq.shared.models import JobEvent, JobMetric
    from tests.factories import job_row, team_row

    job_id = provider.create_job(_spec()).id
    fake.events[job_id] = [_event(0, "job_start", "Job started")]
    fake.metrics[job_id] = [{"train/global_step": 1, "train/loss": 2.5}]
    team, _ = team_row(session, "together-sync")
    row = job_row(session, team, provider_job_id=job_id)
    row.provider, row.model = "together", MODEL
    fake.jobs[job_id]["status"] = "compressing"
    for _ in range(2):
        state = provider.get_job(job_id)
        events = provider.events_after(job_id, row.event_cursor)
        sync.apply_provider_state(session, row.id, state, events)
    assert (row.status, row.provider_status, row.event_cursor) == ("running", "running", "tm-1")
    stored = session.query(JobEvent).filter_by(job_id=row.id, source="provider").all()
    assert sorted(e.type for e in stored) == ["message", "metrics"]
    assert [m.train_loss for m in session.query(JobMetric).filter_by(job_id=row.id)] == [2.5]


def test_checkpoints_results_cancel_and_chat(
    provider: TogetherProvider, fake: FakeTogether
) -> None:
    job_id = provider.create_job(_spec()).id
    fake.jobs[job_id]["status"] = "completed"
    fake.metrics[job_id] = [
        {"train/global_step": 5, "train/loss": 1.25},
        {"eval/global_step": 5, "eval/loss": 1.5},
        {"train/global_step": 10, "train/loss": 1.0},
    ]
    fake.checkpoints[job_id] = [
        {
            "checkpoint_type": "Final",
            "created_at": "2026-11-01T11:00:00Z",
            "path": "p2",
            "step": 10,
            "checkpoint": "adapter",
        },
        {
            "checkpoint_type": "Intermediate",
            "created_at": "2026-11-01T10:30:00Z",
            "path": "p1",
            "step": 5,
        },
    ]
    done = provider.get_job(job_id)
    assert done.result_files == (f"{job_id}-metrics",)
    csv = provider.file_content(done.result_files[0])
    assert sync.decode_result(csv) == csv
    assert csv.decode().splitlines() == [
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
        "5,1.25,,1.5,",
        "10,1.0,,,",
    ]
    checkpoints = provider.list_checkpoints(job_id)
    assert [(c.step_number, c.fine_tuned_model_checkpoint) for c in checkpoints] == [
        (5, f"{job_id}:5"),
        (10, f"{job_id}:10"),
    ]
    assert checkpoints[0].metrics == {"step": 5, "train_loss": 1.25, "valid_loss": 1.5}
    assert checkpoints[0].created_at == 1_793_529_000
    fake.jobs[job_id]["status"] = "running"
    cancelled = provider.cancel_job(job_id)
    assert (cancelled.status, cancelled.raw_status) == ("running", "cancel_requested")
    chat = provider.complete_chat(done.fine_tuned_model or "", [{"role": "user", "content": "x"}])
    assert (chat.text, chat.prompt_tokens) == ("hi", 3)
    assert fake.log[-1][2]["model"] == done.fine_tuned_model


def test_errors_are_classified(provider: TogetherProvider, fake: FakeTogether) -> None:
    fake.faults.append(
        httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "slow"}})
    )
    with pytest.raises(ProviderRetryable) as busy:
        provider.get_job("ft-1")
    assert (busy.value.status, busy.value.retry_after, busy.value.message) == (429, 7.0, "slow")
    fake.faults.append(httpx.Response(403, json={"error": {"message": "no fine-tuning"}}))
    with pytest.raises(ProviderUnavailable, match="no fine-tuning"):
        provider.create_job(_spec())
    fake.faults.append(httpx.Response(503, json={"message": "down"}))
    with pytest.raises(ProviderRetryable, match="down"):
        provider.list_jobs()
    with pytest.raises(ProviderRejected) as missing:
        provider.get_job("ft-404")
    assert missing.value.status == 404


# -- the plugin ----------------------------------------------------------------------------------


def test_missing_settings_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    assert "FTQ_TOGETHER_API_KEY" in (TOGETHER.missing_settings(Settings()) or "")
    emulator = Settings(together_base_url="http://127.0.0.1:8000/emulator/together")
    assert TOGETHER.missing_settings(emulator) is None, "a base URL alone is enough"
    assert TOGETHER.missing_settings(Settings(together_api_key="tgp_x")) is None
    built = TOGETHER.build(Settings(together_api_key="tgp_server"))
    assert isinstance(built, TogetherProvider) and built.client.api_key == "tgp_server"
    assert built.client.max_retries == 0
    team = TOGETHER.build(emulator, Credential(api_key="tgp_team", base_url="http://t.test"))
    assert isinstance(team, TogetherProvider)
    assert (team.client.api_key, str(team.client.base_url)) == ("tgp_team", "http://t.test")
    monkeypatch.setenv("TOGETHER_API_KEY", "tgp_env")
    assert TOGETHER.missing_settings(Settings()) is None


# -- the API: an option the provider does not take is a 422 naming it -----------------------------


@pytest.fixture
def together_configured(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The server has a Together base URL (the emulator's)."""
    monkeypatch.setenv("FTQ_TOGETHER_BASE_URL", "http://127.0.0.1:9/together")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_post_jobs_names_an_option_the_provider_does_not_take(
    client: TestClient, session: Session, together_configured: Any
) -> None:
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12), model=MODEL).json()
    datasets.run_validation(session, dataset["id"])

    def create(provider: str, model: str, **hyperparameters: Any) -> Any:
        method = {"type": "supervised", "hyperparameters": hyperparameters}
        body = {"model": model, "training_dataset": dataset["id"], "provider": provider}
        return client.post("/v1/jobs", json={**body, "method": method}, headers=auth(team))

    refused = create("emulator", "gpt-4o-mini-2024-07-18", n_checkpoints=3)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["param"] == "method.hyperparameters.n_checkpoints"
    assert "together" in error["message"] and "'emulator'" in error["message"]
    created = create("together", MODEL, n_checkpoints=3, lora_rank=16, warmup_ratio=0.1)
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["provider"], job["model"]) == ("together", MODEL)
    sent = Method.model_validate(job["method"]).to_provider("together")
    assert sent["supervised"]["hyperparameters"]["n_checkpoints"] == 3
    bad = create("together", MODEL, warmup_ratio=2.0)
    assert bad.status_code == 422, bad.text
    full = create("together", "openai/gpt-oss-20b", lora=False)
    assert full.status_code == 422, full.text
    assert full.json()["error"]["param"] == "method.hyperparameters.lora"
    assert "LoRA only" in full.json()["error"]["message"]
    assert create("together", MODEL, lora=False).status_code == 201, "Llama 3.1 8B takes full"


def test_job_create_schema_takes_together_options() -> None:
    body = {"model": MODEL, "training_dataset": "ds_x", "provider": "together"}
    data = JobCreate.model_validate(
        {**body, "method": {"type": "dpo", "hyperparameters": {"beta": 0.1, "simpo_gamma": 0.5}}}
    )
    assert data.method.to_provider("together")["dpo"]["hyperparameters"]["simpo_gamma"] == 0.5


# -- the catalog and token counts ----------------------------------------------------------------


def test_the_catalog_knows_togethers_models() -> None:
    llama = catalog.get_model(MODEL)
    assert (llama.context, llama.price_per_1m, llama.price_full_per_1m) == (131_072, 0.48, 0.54)
    assert llama.providers == ("together",) and set(llama.tuning) == {"lora", "full"}
    assert llama.supports("dpo") and llama.format == "chat"
    assert (llama.encoding, llama.exact_tokens) == ("cl100k_base", False)
    oss = catalog.get_model("openai/gpt-oss-20b")
    assert (oss.tuning, oss.encoding, oss.exact_tokens) == (("lora",), "o200k_base", True)
    assert all(m.providers == () for m in catalog.MODELS), "OpenAI's entries are unchanged"
    assert MODEL not in {m.name for m in catalog.list_models()}
    assert {m.name for m in catalog.provider_models("together")} == set(
        get_plugin("together").capabilities.models
    )
    assert failover.offers("together", MODEL)
    assert not failover.offers("openai", MODEL) and not failover.offers("together", "gpt-4o")


def test_token_counts_say_whether_they_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(chat_jsonl(12))
    estimate = validate_file(path, model=MODEL)
    assert estimate.ok and not estimate.tokens_exact
    assert estimate.token_count_source.startswith("estimate from cl100k_base")
    assert "Meta Llama 3" in estimate.token_count_source
    assert estimate.context_limit == 131_072 and estimate.price_per_1m_tokens == 0.48
    exact = validate_file(path, model="gpt-4o-mini-2024-07-18")
    assert exact.tokens_exact and exact.token_count_source.startswith("exact: o200k_base")
    oss = validate_file(path, model="openai/gpt-oss-20b")
    assert oss.tokens_exact and oss.tokens.total.sum == exact.tokens.total.sum
