"""The real `together` SDK (strict response types) driven end to end against the emulator.

The emulator serves Together AI's API under `/together` on a loopback port with time frozen
(speed 0), so every status change comes from `/_emulator/jobs/{id}/advance`.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import together
from fastapi import FastAPI
from together.types.fine_tuning_estimate_price_response import AvailableEstimate
from together.types.finetune_response import (
    TrainingMethodTrainingMethodDpo,
    TrainingMethodTrainingMethodSft,
)

from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

BASE = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
LORA_ONLY = "Qwen/Qwen2.5-7B-Instruct"


def chat_lines(n: int, prefix: str = "q") -> list[dict[str, Any]]:
    """Conversation examples teaching `{prefix}{i}` -> `a{i}`."""
    return [
        {
            "messages": [
                {"role": "user", "content": f"{prefix}{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(n)
    ]


def preference_lines(n: int) -> list[dict[str, Any]]:
    """Preference examples for DPO."""
    return [
        {
            "input": {"messages": [{"role": "user", "content": f"p{i}"}]},
            "preferred_output": [{"role": "assistant", "content": "good"}],
            "non_preferred_output": [{"role": "assistant", "content": "bad"}],
        }
        for i in range(n)
    ]


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    """A JSONL file."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    """One frozen-time emulator for the module."""
    url, stop = serve_in_thread(create_app(speed=0.0, org_slug="acme"))
    yield url
    stop()


@pytest.fixture
def control(root: str) -> Iterator[EmulatorControl]:
    """Admin controls on a reset emulator."""
    ctl = EmulatorControl(root)
    ctl.reset()
    yield ctl
    ctl.close()


def sdk(root: str, retries: int = 0) -> together.Together:
    """The SDK with strict response validation, pointed at the emulator."""
    return together.Together(
        api_key="tg-secret-key",
        base_url=f"{root}/together",
        max_retries=retries,
        _strict_response_validation=True,
    )


@pytest.fixture
def client(root: str, control: EmulatorControl) -> together.Together:
    """An SDK client on a reset emulator."""
    return sdk(root)


@pytest.fixture
def train(client: together.Together, tmp_path: Path) -> str:
    """An uploaded conversation file of 12 examples."""
    path = write(tmp_path / "train.jsonl", chat_lines(12))
    return client.files.upload(file=path, purpose="fine-tune", check=True).id


def create(client: together.Together, training_file: str, **options: Any) -> Any:
    """`fine_tuning.create` on the default base model with `train_on_inputs` set."""
    options.setdefault("model", BASE)
    return client.fine_tuning.create(training_file=training_file, train_on_inputs="auto", **options)


def untar(data: bytes) -> dict[str, bytes]:
    """The members of a .tar.gz."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_upload_follows_the_sdks_signed_url_flow(
    client: together.Together, control: EmulatorControl, tmp_path: Path
) -> None:
    path = write(tmp_path / "train.jsonl", chat_lines(12))
    file = client.files.upload(file=path, purpose="fine-tune", check=True)
    assert re.fullmatch(r"file-[0-9a-f-]{36}", file.id)
    assert (file.bytes, file.filename, file.processing_status) == (
        path.stat().st_size,
        "train.jsonl",
        "COMPLETED",
    )
    calls = [(e["method"], e["route"], e["status"]) for e in reversed(control.requests())]
    assert calls == [
        ("POST", "POST /together/v1/files", 302),
        ("PUT", "PUT /together/_storage/{file_id}", 200),
        ("POST", "POST /together/v1/files/{id}/preprocess", 200),
    ]
    shown = client.files.retrieve(file.id)
    assert shown.validation_report is not None
    assert shown.validation_report.dataset_format == "CONVERSATION"
    assert shown.validation_report.nlines == 12
    assert [f.id for f in client.files.list().data] == [file.id]
    assert client.files.content(file.id).read() == path.read_bytes()
    assert client.files.delete(file.id).deleted is True
    with pytest.raises(together.NotFoundError):
        client.files.retrieve(file.id)


def test_direct_multipart_upload_and_invalid_files(root: str, control: EmulatorControl) -> None:
    form = {"purpose": "fine-tune", "file_name": "mixed.jsonl", "file_type": "jsonl"}
    mixed = json.dumps({"text": "hello"}) + "\n" + json.dumps(chat_lines(1)[0]) + "\n"
    response = httpx.post(
        f"{root}/together/v1/files/upload",
        data=form,
        files={"file": ("mixed.jsonl", mixed.encode())},
        headers={"Authorization": "Bearer k"},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["processing_status"], body["Processed"]) == ("INVALID_FORMAT", False)
    assert "mixes dataset formats" in body["validation_report"]["error"]
    with pytest.raises(together.BadRequestError, match="cannot be used"):
        create(sdk(root), body["id"])


def test_unchecked_upload_of_a_bad_file_is_refused_at_create(
    client: together.Together, tmp_path: Path
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\n{oops\n')
    file = client.files.upload(file=path, purpose="fine-tune", check=False)
    assert file.processing_status == "INVALID_FORMAT"
    estimate = client.fine_tuning.estimate_price(training_file=file.id, model=BASE)
    assert estimate.estimation_available is False
    assert estimate.unavailable_reason == "train_file_invalid"
    with pytest.raises(together.BadRequestError, match="not in a supported format"):
        create(client, file.id)


def test_storage_put_needs_the_upload_signature(root: str, control: EmulatorControl) -> None:
    announced = httpx.post(
        f"{root}/together/v1/files",
        files={"purpose": (None, "fine-tune"), "file_name": (None, "a.jsonl")},
        headers={"Authorization": "Bearer k"},
    )
    assert announced.status_code == 302
    location, file_id = announced.headers["location"], announced.headers["x-together-file-id"]
    assert file_id in location
    assert httpx.put(location.split("?")[0], content=b"x").status_code == 403
    assert httpx.put(location, content=b'{"text": "hi"}\n').status_code == 200
    entry = next(e for e in control.requests() if e["method"] == "PUT")
    assert entry["query"] == {"X-Amz-Signature": "***"}


def test_api_routes_need_a_bearer_key(root: str, control: EmulatorControl) -> None:
    response = httpx.get(f"{root}/together/v1/fine-tunes")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_model_limits_come_from_the_model_table(client: together.Together, train: str) -> None:
    limits = client.fine_tuning.model_limits(model_name=LORA_ONLY)
    assert (limits.max_seq_length_sft, limits.max_seq_length_dpo) == (32768, 16384)
    assert limits.supports_full_training is False
    assert limits.full_training is not None and limits.full_training.max_batch_size == 0
    assert client.fine_tuning.model_limits(model_name=BASE).supports_full_training is True
    with pytest.raises(together.BadRequestError, match="Full training is not supported"):
        create(client, train, model=LORA_ONLY, lora=False)
    with pytest.raises(together.NotFoundError):
        client.fine_tuning.model_limits(model_name="acme/not-a-model")
    supported = httpx.get(
        str(client.base_url).rstrip("/") + "/v1/fine-tunes/models/supported",
        headers={"Authorization": "Bearer k"},
    ).json()["models"]
    assert BASE in supported and LORA_ONLY in supported


def test_create_echoes_options_and_names_the_model_like_together(
    client: together.Together, control: EmulatorControl, tmp_path: Path, train: str
) -> None:
    valid = client.files.upload(file=write(tmp_path / "valid.jsonl", chat_lines(4, "v")))
    estimate = client.fine_tuning.estimate_price(
        training_file=train, validation_file=valid.id, model=BASE, n_epochs=3, n_evals=2
    )
    assert estimate.estimation_available is True
    assert estimate.estimated_train_token_count and estimate.estimated_eval_token_count
    job = create(
        client,
        train,
        validation_file=valid.id,
        n_epochs=3,
        n_checkpoints=3,
        n_evals=2,
        batch_size=8,
        learning_rate=2e-5,
        lr_scheduler_type="linear",
        warmup_ratio=0.1,
        lora=True,
        lora_r=16,
        lora_alpha=32,
        suffix="ftq-job-1",
        random_seed=7,
        wandb_api_key="wandb-secret",
        wandb_project_name="proj",
    )
    assert re.fullmatch(r"ft-[0-9a-f-]{36}", job.id)
    assert job.status == "pending" and job.suffix == "ftq-job-1"
    assert re.fullmatch(rf"acme/{BASE.split('/')[1]}-ftq-job-1-[0-9a-f]{{8}}", job.output_name)
    assert job.training_type.lora_r == 16 and job.training_type.lora_alpha == 32
    assert (job.n_epochs, job.n_checkpoints, job.n_evals, job.batch_size) == (3, 3, 2, 8)
    shown = client.fine_tuning.retrieve(job.id)
    assert shown.train_on_inputs is False  # "auto" on conversation data masks the inputs
    assert isinstance(shown.training_method, TrainingMethodTrainingMethodSft)
    assert shown.validation_file == valid.id
    assert shown.wandb_url == f"https://wandb.ai/together/proj/runs/{job.id}"
    assert shown.x_model_output_name == job.output_name
    raw = httpx.get(
        f"{client.base_url}v1/fine-tunes/{job.id}", headers={"Authorization": "Bearer k"}
    )
    assert raw.json()["random_seed"] == 7 and "wandb-secret" not in raw.text
    create_call = next(
        e for e in control.requests() if e["route"] == "POST /together/v1/fine-tunes"
    )
    assert (create_call["api"], create_call["auth"]) == ("together", "bearer")


def test_estimates_price_dpo_and_full_above_lora_sft(client: together.Together, train: str) -> None:
    lora_sft = client.fine_tuning.estimate_price(training_file=train, model=BASE, n_epochs=2)
    full = client.fine_tuning.estimate_price(
        training_file=train, model=BASE, n_epochs=2, training_type={"type": "Full"}
    )
    dpo = client.fine_tuning.estimate_price(
        training_file=train, model=BASE, n_epochs=2, training_method={"method": "dpo"}
    )
    prices = []
    for estimate in (lora_sft, full, dpo):
        assert isinstance(estimate, AvailableEstimate) and estimate.estimated_total_price
        prices.append(estimate.estimated_total_price)
    assert 0 < prices[0] < prices[1] < prices[2]


def test_n_evals_needs_a_validation_file(client: together.Together, train: str) -> None:
    with pytest.raises(together.BadRequestError, match="requires a validation_file"):
        create(client, train, n_evals=2)


def test_statuses_follow_togethers_lifecycle(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    job = create(client, train, n_epochs=2)  # 12 examples, batch 8: 2 steps per epoch
    seen = [client.fine_tuning.retrieve(job.id).status]
    # pending 30 s, queued 30 s, 4 steps of 3 s, compressing 15 s, uploading 15 s.
    for seconds in (30, 30, 12, 15, 15):
        control.advance(job.id, seconds=seconds)
        seen.append(client.fine_tuning.retrieve(job.id).status)
    assert seen == ["pending", "queued", "running", "compressing", "uploading", "completed"]
    assert [j.status for j in client.fine_tuning.list().data] == ["completed"]
    done = client.fine_tuning.retrieve(job.id)
    assert done.started_at is not None and done.token_count


def test_events_and_checkpoints_look_like_togethers(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    job = create(client, train, n_epochs=3, n_checkpoints=3, lora=True)
    control.advance(job.id)
    kinds = [e.type for e in client.fine_tuning.list_events(job.id).data]
    assert kinds[:2] == ["job_pending", "job_start"]
    assert kinds.count("epoch_complete") == 3 and kinds.count("checkpoint_save") == 2
    assert kinds[-6:] == [
        "training_complete",
        "model_compressing",
        "model_compression_complete",
        "model_uploading",
        "model_upload_complete",
        "job_complete",
    ]
    start = next(
        e for e in client.fine_tuning.list_events(job.id).data if e.type == "training_start"
    )
    assert start.param_count == 8_000_000_000 and start.token_count
    saved = client.fine_tuning.list_checkpoints(job.id).data
    assert [(c.step, c.checkpoint_type) for c in saved] == [
        (6, "Final Merged"),
        (6, "Final Adapter"),
        (4, "Intermediate (step 4)"),
        (2, "Intermediate (step 2)"),
    ]
    assert saved[0].path.endswith(job.output_name)


def test_metrics_are_chronological_with_eval_rows(
    client: together.Together, control: EmulatorControl, tmp_path: Path, train: str
) -> None:
    valid = client.files.upload(file=write(tmp_path / "v.jsonl", chat_lines(3, "v")))
    job = create(client, train, validation_file=valid.id, n_epochs=4, n_evals=2)
    control.advance(job.id, to_status="running")
    control.advance(job.id, seconds=9)  # three of eight steps
    rows = client.fine_tuning.list_metrics(job.id).metrics or []
    assert [r["train/global_step"] for r in rows] == [1.0, 2.0, 3.0]
    control.advance(job.id)
    rows = client.fine_tuning.list_metrics(job.id).metrics or []
    assert [r["eval/global_step"] for r in rows if "eval/loss" in r] == [4.0, 8.0]
    steps = [r["train/global_step"] if "train/loss" in r else r["eval/global_step"] for r in rows]
    assert steps == sorted(steps)
    window = client.fine_tuning.list_metrics(job.id, global_step_from=3, global_step_to=5)
    assert [r["train/global_step"] for r in window.metrics or [] if "train/loss" in r] == [3, 4, 5]
    sampled = client.fine_tuning.list_metrics(job.id, resolution=2).metrics or []
    assert [r["train/global_step"] for r in sampled if "train/loss" in r] == [1.0, 8.0]


def test_download_gives_a_deterministic_tarball(
    root: str, client: together.Together, control: EmulatorControl, train: str
) -> None:
    job = create(client, train, n_epochs=2, n_checkpoints=2, lora=True)
    with pytest.raises(together.BadRequestError, match="not ready"):
        client.fine_tuning.content(ft_id=job.id).read()
    control.advance(job.id, to_status="running")
    control.advance(job.id, seconds=6)  # step 2 saved a checkpoint
    early = untar(client.fine_tuning.content(ft_id=job.id, checkpoint_step=2).read())
    assert json.loads(early["emulator.json"])["step"] == 2
    assert "adapter_model.safetensors" in early
    with pytest.raises(together.NotFoundError):
        client.fine_tuning.content(ft_id=job.id, checkpoint_step=3).read()
    control.advance(job.id)
    final = client.fine_tuning.content(ft_id=job.id).read()
    assert final == client.fine_tuning.content(ft_id=job.id, checkpoint="merged").read()
    members = untar(final)
    about = json.loads(members["emulator.json"])
    assert (about["step"], about["checkpoint"], about["model"]) == (4, "model", BASE)
    assert "model.safetensors" in members
    adapter = untar(client.fine_tuning.content(ft_id=job.id, checkpoint="adapter").read())
    assert json.loads(adapter["adapter_config.json"])["r"] == 8
    part = httpx.get(
        f"{root}/together/v1/finetune/download",
        params={"ft_id": job.id},
        headers={"Authorization": "Bearer k", "Range": "bytes=0-1"},
    )
    assert part.status_code == 206 and part.content == final[:2]
    assert part.headers["content-range"] == f"bytes 0-1/{len(final)}"


def test_from_checkpoint_continues_a_job(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    parent = create(client, train, n_epochs=2, n_checkpoints=2, lora=False)
    with pytest.raises(together.BadRequestError, match="not available"):
        create(client, train, model=None, from_checkpoint=parent.id)
    control.advance(parent.id)
    step_child = create(client, train, model=None, from_checkpoint=f"{parent.id}:2")
    assert step_child.model == BASE and step_child.from_checkpoint == f"{parent.id}:2"
    assert step_child.training_type.type == "Full"  # inherited from the parent
    named_child = create(client, train, model=None, from_checkpoint=parent.output_name)
    assert named_child.model == BASE
    with pytest.raises(together.NotFoundError):  # the SDK first asks the limits of "ft-nope"
        create(client, train, model=None, from_checkpoint="ft-nope:1")
    raw = httpx.post(
        f"{client.base_url}v1/fine-tunes",
        json={"training_file": train, "from_checkpoint": f"{parent.id}:3"},
        headers={"Authorization": "Bearer k"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "from_checkpoint"


def test_dpo_trains_on_preference_data(
    client: together.Together, tmp_path: Path, train: str
) -> None:
    pairs = client.files.upload(file=write(tmp_path / "pairs.jsonl", preference_lines(12)))
    job = client.fine_tuning.create(
        training_file=pairs.id, model=BASE, training_method="dpo", dpo_beta=0.2, rpo_alpha=0.5
    )
    method = client.fine_tuning.retrieve(job.id).training_method
    assert isinstance(method, TrainingMethodTrainingMethodDpo)
    assert (method.dpo_beta, method.rpo_alpha) == (0.2, 0.5)
    default = client.fine_tuning.create(training_file=pairs.id, model=BASE, training_method="dpo")
    method = client.fine_tuning.retrieve(default.id).training_method
    assert isinstance(method, TrainingMethodTrainingMethodDpo) and method.dpo_beta == 0.1
    with pytest.raises(together.BadRequestError, match="preference"):
        client.fine_tuning.create(training_file=train, model=BASE, training_method="dpo")


def test_cancel_requested_then_cancelled(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    job = create(client, train)
    control.advance(job.id, to_status="running")
    assert client.fine_tuning.cancel(job.id).status == "cancel_requested"
    assert client.fine_tuning.retrieve(job.id).status == "cancel_requested"
    control.advance(job.id, seconds=10)
    assert client.fine_tuning.retrieve(job.id).status == "cancelled"
    kinds = [e.type for e in client.fine_tuning.list_events(job.id).data]
    assert kinds[-2:] == ["cancel_requested", "job_stopped"]
    with pytest.raises(together.BadRequestError, match="already cancelled"):
        client.fine_tuning.cancel(job.id)
    assert client.fine_tuning.delete(job.id).message
    with pytest.raises(together.NotFoundError):
        client.fine_tuning.retrieve(job.id)


def test_a_running_job_cannot_be_deleted(client: together.Together, train: str) -> None:
    job = create(client, train)
    with pytest.raises(together.BadRequestError, match="cancel it first"):
        client.fine_tuning.delete(job.id)


def test_429_fault_surfaces_as_rate_limit_error(
    root: str, client: together.Together, control: EmulatorControl
) -> None:
    control.faults(next_429=1, retry_after_ms=2000, only=["GET /together/v1/fine-tunes"])
    with pytest.raises(together.RateLimitError) as limited:
        client.fine_tuning.list()
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.response.headers["retry-after-ms"] == "2000"
    assert limited.value.body["error"]["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert client.fine_tuning.list().data == []
    control.faults(next_429=1, retry_after_ms=5, only=["GET /together/v1/files"])
    assert sdk(root, retries=1).files.list().data == []  # the SDK retries after 5 ms
    assert control.stats()["faults_injected"]["429"] == 2


def test_5xx_on_create_is_retried_by_the_sdk(
    root: str, control: EmulatorControl, train: str
) -> None:
    control.faults(next_5xx=1, only=["POST /together/v1/fine-tunes"])
    job = create(sdk(root, retries=1), train)
    assert job.status == "pending"
    statuses = [
        e["status"] for e in control.requests() if e["route"] == "POST /together/v1/fine-tunes"
    ]
    assert statuses[0] == 200 and statuses[1] in (500, 502, 503)


def test_random_faults_skip_the_storage_put(root: str, control: EmulatorControl) -> None:
    announced = httpx.post(
        f"{root}/together/v1/files",
        files={"purpose": (None, "fine-tune"), "file_name": (None, "a.jsonl")},
        headers={"Authorization": "Bearer k"},
    )
    control.faults(rate_5xx=1.0)
    assert httpx.put(announced.headers["location"], content=b"{}\n").status_code == 200
    assert (
        httpx.get(f"{root}/together/v1/files", headers={"Authorization": "Bearer k"}).status_code
        >= 500
    )
    control.faults(next_5xx=1, only=["PUT /together/_storage/{file_id}"])
    assert httpx.put(announced.headers["location"], content=b"{}\n").status_code >= 500


def test_a_faulted_put_fails_the_sdks_upload(
    root: str, control: EmulatorControl, tmp_path: Path
) -> None:
    control.faults(next_5xx=1, only=["PUT /together/_storage/{file_id}"])
    with pytest.raises(together.APIStatusError, match="Error during file upload"):
        sdk(root).files.upload(file=write(tmp_path / "t.jsonl", chat_lines(2)))


def test_create_403_fault(client: together.Together, control: EmulatorControl, train: str) -> None:
    control.faults(create_403=True)
    with pytest.raises(together.PermissionDeniedError, match="not available"):
        create(client, train)
    control.faults()
    assert create(client, train).status == "pending"


def test_max_active_jobs_fault(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    control.faults(max_active_jobs=1, retry_after_ms=3000)
    first = create(client, train)
    with pytest.raises(together.RateLimitError) as limited:
        create(client, train)
    assert limited.value.response.headers["retry-after"] == "3"
    control.advance(first.id)
    assert create(client, train).status == "pending"


def test_fail_jobs_with_ends_in_error_with_the_message(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    job = create(client, train)
    control.faults(fail_jobs_with={"code": "oom", "message": "CUDA out of memory"})
    control.advance(job.id, to_status="running")
    failed = client.fine_tuning.retrieve(job.id)
    assert failed.status == "error"
    last = client.fine_tuning.list_events(job.id).data[-1]
    assert (last.type, last.level, last.message) == ("job_error", "error", "CUDA out of memory")
    with pytest.raises(together.NotFoundError):
        client.chat.completions.create(
            model=job.output_name, messages=[{"role": "user", "content": "q1"}]
        )


def test_reject_files_fault_fails_jobs_when_they_start(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    control.faults(reject_files=True)
    job = create(client, train)
    control.advance(job.id)
    assert client.fine_tuning.retrieve(job.id).status == "error"
    assert "reject_files" in client.fine_tuning.list_events(job.id).data[-1].message


def test_chat_with_the_tuned_model(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    job = create(client, train)
    with pytest.raises(together.NotFoundError):
        client.chat.completions.create(
            model=job.output_name, messages=[{"role": "user", "content": "q3"}]
        )
    control.advance(job.id)
    answer = client.chat.completions.create(
        model=job.output_name, messages=[{"role": "user", "content": "q3"}]
    )
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == "a3"
    assert answer.choices[0].finish_reason == "stop" and answer.usage is not None
    base = client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "q3"}])
    assert base.choices[0].message is not None and base.choices[0].message.content != "a3"
    stream = client.chat.completions.create(
        model=job.output_name, messages=[{"role": "user", "content": "q3"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a3"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_job_is_found_again_by_its_suffix(client: together.Together, train: str) -> None:
    older = create(client, train, suffix="ftq-ftj-1")
    newer = create(client, train, suffix="ftq-ftj-2")
    listed = client.fine_tuning.list().data
    assert [j.id for j in listed] == [newer.id, older.id]  # newest first
    assert next(j for j in listed if j.suffix == "ftq-ftj-1").id == older.id
    with pytest.raises(together.BadRequestError):
        create(client, train, suffix="x" * 41)


def test_reset_and_stats_cover_together(
    client: together.Together, control: EmulatorControl, train: str
) -> None:
    job = create(client, train)
    stats = control.stats()
    assert (stats["jobs_created"], stats["files_created"], stats["active_jobs"]) == (1, 1, 1)
    assert stats["calls"]["POST /together/v1/fine-tunes"] == 1
    control.advance_many(count=1, to_status="succeeded")
    assert client.fine_tuning.retrieve(job.id).status == "completed"
    control.reset()
    assert client.files.list().data == [] and client.fine_tuning.list().data == []


def test_openai_routes_never_see_together_jobs(
    root: str, client: together.Together, train: str
) -> None:
    job = create(client, train)
    listed = httpx.get(f"{root}/v1/fine_tuning/jobs").json()
    assert listed["data"] == []
    assert httpx.get(f"{root}/v1/fine_tuning/jobs/{job.id}").status_code == 404


def test_mounted_base_url_and_upload_location(tmp_path: Path) -> None:
    parent = FastAPI()
    parent.mount("/emulator", create_app(speed=0.0))
    url, stop = serve_in_thread(parent)
    try:
        client = together.Together(api_key="k", base_url=f"{url}/emulator/together", max_retries=0)
        file = client.files.upload(file=write(tmp_path / "t.jsonl", chat_lines(12)))
        job = create(client, file.id)
        assert client.fine_tuning.retrieve(job.id).status == "pending"
        EmulatorControl(f"{url}/emulator").advance(job.id)
        assert client.fine_tuning.retrieve(job.id).status == "completed"
    finally:
        stop()
