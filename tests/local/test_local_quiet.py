"""A local run prints nothing of its own: no Trainer log dicts, no progress bars, no warnings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ftq.shared.providers.base import JobSpec
from ftq.shared.settings import reset_settings
from tests.local.helpers import FAST_ENV, build_tiny, jsonl, require_local_stack, units_rows


@pytest.fixture
def local_env(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fast local settings with the tiny model allowed."""
    require_local_stack()
    settings = {
        **FAST_ENV,
        "FTQ_LOCAL_WORK_DIR": str(tmp_path / "work"),
        "FTQ_LOCAL_MODELS": json.dumps({"tiny": str(tmp_path / "tiny")}),
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    yield tmp_path
    reset_settings()


def test_training_and_chat_print_nothing_to_the_terminal(
    local_env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from ftq.shared.providers.local.provider import LocalProvider
    from ftq.shared.providers.local.trainer import run_training

    build_tiny(local_env / "tiny")
    provider = LocalProvider()
    path = local_env / "train.jsonl"
    path.write_bytes(jsonl(units_rows(12)))
    file_id = provider.upload_file(path, "ftq-quiet.jsonl")
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}}
    spec = JobSpec(ftq_job_id="ftj_quiet", model="tiny", training_file=file_id, method=method)
    capfd.readouterr()  # only what training and inference print from here on
    run = provider.create_job(spec)
    assert run_training(run.id) == "succeeded"
    tuned = provider.get_job(run.id).fine_tuned_model
    question = [{"role": "user", "content": "How many metres is 3 kilometres?"}]
    assert provider.complete_chat(tuned, question, max_tokens=4).completion_tokens > 0
    out, err = capfd.readouterr()
    assert "'loss'" not in out and "train_runtime" not in out, "the Trainer's log dicts"
    assert "it/s" not in err and "Loading weights" not in err, "progress bars"
    assert out == "" and err == ""
