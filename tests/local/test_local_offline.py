"""The local provider in-process: SFT and DPO runs, chat with the result, and not one network
connection attempted (an audit hook watches every socket connect and name lookup)."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ftq.shared.providers.base import JobSpec, ProviderRejected
from ftq.shared.settings import reset_settings
from tests.local.helpers import FAST_ENV, build_tiny, jsonl, require_local_stack, units_rows

ATTEMPTS: list[tuple[str, Any]] = []
WATCHING: list[bool] = []
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", ""}


def _outside(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    try:
        return not ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host not in LOCAL_NAMES


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not WATCHING:
        return
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and _outside(address[0]):
            ATTEMPTS.append((event, address))
    elif event == "socket.getaddrinfo" and _outside(args[0]):
        ATTEMPTS.append((event, args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def offline_env(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fast local settings on the migrated test database; the audit hook armed."""
    require_local_stack()
    allowed = json.dumps({"tiny": str(tmp_path / "tiny")})
    settings = {
        **FAST_ENV,
        "FTQ_LOCAL_WORK_DIR": str(tmp_path / "work"),
        "FTQ_LOCAL_MODELS": allowed,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    ATTEMPTS.clear()
    WATCHING.append(True)
    yield tmp_path
    WATCHING.clear()
    reset_settings()


def _run(tmp_path: Path, rows: list[dict[str, Any]], method: dict[str, Any], job: str) -> Any:
    from ftq.shared.providers.local.provider import LocalProvider
    from ftq.shared.providers.local.trainer import run_training

    provider = LocalProvider()
    path = tmp_path / f"{job}.jsonl"
    path.write_bytes(jsonl(rows))
    file_id = provider.upload_file(path, f"ftq-{job}.jsonl")
    spec = JobSpec(ftq_job_id=job, model="tiny", training_file=file_id, method=method)
    created = provider.create_job(spec)
    assert provider.find_job(job) == created  # found by our id: a retried submit adds no twin
    assert provider.create_job(spec).id == created.id
    assert run_training(created.id) == "succeeded"
    return provider, provider.get_job(created.id)


def test_supervised_run_and_chat_never_touch_the_network(offline_env: Path):
    build_tiny(offline_env / "tiny")
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    provider, job = _run(offline_env, units_rows(12), method, "ftj_offline_sft")
    assert job.status == "succeeded" and job.fine_tuned_model.endswith(job.id[-8:])
    events = provider.events_after(job.id, None)
    points = [e.data for e in events if e.type == "metrics"]
    assert [p["step"] for p in points] == list(range(1, 25))
    assert {"train_loss", "train_mean_token_accuracy", "total_steps"} <= set(points[0])
    later = provider.events_after(job.id, events[-3].id)
    assert later == events[-2:]
    question = [{"role": "user", "content": "How many metres is 3 kilometres?"}]
    tuned = provider.complete_chat(job.fine_tuned_model, question, max_tokens=8)
    base = provider.complete_chat("tiny", question, max_tokens=8)
    assert tuned.completion_tokens > 0 and base.completion_tokens > 0
    # Each kept epoch answers too (checkpoint evals and the chat route use these names).
    kept = provider.list_checkpoints(job.id)
    assert [c.step_number for c in kept] == [12, 24]
    early = provider.complete_chat(kept[0].fine_tuned_model_checkpoint, question, max_tokens=8)
    assert early.completion_tokens > 0
    with pytest.raises(ProviderRejected, match="no checkpoint"):
        provider.complete_chat(f"{job.fine_tuned_model}:ckpt-step-5", question, max_tokens=8)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert ATTEMPTS == []


def test_preference_dataset_trains_with_dpo_offline(offline_env: Path):
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"How many metres is {i} km?"}]},
            "preferred_output": [{"role": "assistant", "content": f"{i * 1000} m."}],
            "non_preferred_output": [{"role": "assistant", "content": f"{i} m."}],
        }
        for i in range(12)
    ]
    build_tiny(offline_env / "tiny")
    method = {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}}}
    provider, job = _run(offline_env, rows, method, "ftj_offline_dpo")
    assert job.status == "succeeded"
    points = [e.data for e in provider.events_after(job.id, None) if e.type == "metrics"]
    assert [p["step"] for p in points] == [1, 2, 3]
    assert points[0]["train_loss"] == pytest.approx(0.6931, abs=1e-3)  # log(2): DPO's start
    assert [c.step_number for c in provider.list_checkpoints(job.id)] == [3]
    assert ATTEMPTS == []
