"""The local provider's training options (issue 17): early stopping on validation loss, evaluation
every N steps, sequence packing, gradient checkpointing and `from_checkpoint`, trained for real
on the tiny model through ftq's one training function, and their 422s through POST /v1/jobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.models import Job, LocalCheckpoint, LocalRun
from ftq.shared.settings import reset_settings
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.local.helpers import FAST_ENV, build_tiny, jsonl, require_local_stack, units_rows

PARAM = "method.hyperparameters."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, built once for this module."""
    require_local_stack()
    return build_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def local(tiny: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The local provider on, with `tiny` (and `other`, a second base) configured."""
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FTQ_LOCAL_ENABLED", "true")
    monkeypatch.setenv("FTQ_LOCAL_MODELS", json.dumps({"tiny": str(tiny), "other": str(tiny)}))
    reset_settings()
    yield tiny
    reset_settings()


def _recorder(run_id: str) -> Any:
    """A Reporter keeping what training reports in its buffer, writing nothing to the database."""
    from ftq.shared.providers.local import trainer

    class Recording(trainer.Reporter):
        def flush(self) -> None:
            return None

    return Recording(run_id, "test")


def _train(tmp_path: Path, name: str, rows: list, valid: list | None = None, **params: Any) -> Any:
    """Train the tiny model in-process; the reporter with every event."""
    from ftq.shared.providers.local import trainer

    training = tmp_path / f"{name}-train.jsonl"
    training.write_bytes(jsonl(rows))
    validation = None
    if valid is not None:
        validation = tmp_path / f"{name}-valid.jsonl"
        validation.write_bytes(jsonl(valid))
    run_id = f"lft_{name}_{tmp_path.name[-12:]}"
    reference = params.pop("from_checkpoint", None)
    plan = trainer.Plan(
        run_id, "tiny", "supervised", params, training, validation, 7, from_checkpoint=reference
    )
    reporter = _recorder(run_id)
    place = trainer.Place(tmp_path / name, None)
    assert trainer.train(plan, reporter, place) == "succeeded"
    return reporter


def _points(reporter: Any) -> list[dict[str, Any]]:
    return [e.data for e in reporter.buffer if e.type == "metrics"]


def _messages(reporter: Any) -> list[str]:
    return [e.message for e in reporter.buffer]


def _adapter(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _wrong_answers(n: int) -> list[dict[str, Any]]:
    """The training questions answered in another form: fitting the training set hurts these."""
    rows = units_rows(n)
    for i, row in enumerate(rows):
        row["messages"][-1]["content"] = f"Roughly {(i * 37) % 11} furlongs, give or take."
    return rows


def test_early_stopping_stops_before_the_last_step_and_keeps_the_best_adapter(
    local: Path, tmp_path: Path
):
    from ftq.shared.providers.local import service

    reporter = _train(
        tmp_path,
        "stop",
        units_rows(16),
        _wrong_answers(8),
        n_epochs=8,
        batch_size=2,
        learning_rate_multiplier=15,
        eval_steps=4,
        early_stopping_patience=1,
        early_stopping_min_delta=0.0001,
    )
    stop = next(e for e in reporter.buffer if e.message.startswith("Early stopping at step"))
    assert "did not improve by 0.0001 for 1 evaluations" in stop.message
    stopped, best = stop.data["step"], stop.data["best_step"]
    assert stopped < 64 and stopped % 4 == 0, "stopped on an evaluation, before the last step"
    assert best < stopped
    losses = {p["step"]: p["valid_loss"] for p in _points(reporter) if "valid_loss" in p}
    assert min(losses, key=lambda step: losses[step]) == best
    stored = _adapter(service.run_dir(reporter.run_id) / "final")
    kept = _adapter(tmp_path / "stop" / f"checkpoint-{best}")
    assert stored.keys() == kept.keys()
    assert all(bool((stored[k] == kept[k]).all()) for k in stored), "the best adapter is stored"


def test_eval_steps_scores_validation_every_n_steps_and_saves_with_it(local: Path, tmp_path: Path):
    reporter = _train(
        tmp_path, "evals", units_rows(12), units_rows(4, offset=50), n_epochs=1, eval_steps=3
    )
    steps = sorted(p["step"] for p in _points(reporter) if "valid_loss" in p)
    assert steps[:4] == [3, 6, 9, 12]
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "evals").glob("checkpoint-*"))
    assert saved == [6, 9, 12], "saves on the evaluation steps (the last three kept)"


def test_packing_trains_short_examples_in_fewer_steps(local: Path, tmp_path: Path):
    plain = _train(tmp_path, "plain", units_rows(24), n_epochs=1, batch_size=1)
    packed = _train(tmp_path, "packed", units_rows(24), n_epochs=1, batch_size=1, packing=True)
    said = next(m for m in _messages(packed) if m.startswith("Packed 24 examples into "))
    blocks = int(said.split(" into ")[1].split()[0])
    assert _points(plain)[-1]["total_steps"] == 24
    assert _points(packed)[-1]["total_steps"] == blocks <= 3, "a block holds many short examples"


def test_packed_blocks_keep_every_trained_token_and_no_label_crosses_examples(local: Path):
    from transformers import AutoTokenizer

    from ftq.shared.providers.local import data

    tokenizer = AutoTokenizer.from_pretrained(local)
    examples = data.sft_examples(tokenizer, units_rows(30), 1024)
    blocks = data.pack(examples, 200)
    assert len(examples) // 6 <= len(blocks) < len(examples) // 3
    assert all(len(b.input_ids) <= 200 and len(b.labels) == len(b.input_ids) for b in blocks)
    assert [t for b in blocks for t in b.input_ids] == [t for e in examples for t in e.input_ids]
    trained = [(e.input_ids[i], label) for e in examples for i, label in enumerate(e.labels)]
    packed = [(b.input_ids[i], label) for b in blocks for i, label in enumerate(b.labels)]
    assert [pair for pair in packed if pair[1] != data.IGNORE] == [
        pair for pair in trained if pair[1] != data.IGNORE
    ], "every trained token is still trained, on its own position"
    for block in blocks:  # an example's first token would be predicted from the one before
        starts, at = [], 0
        for example in examples:
            if block.input_ids[at : at + len(example.input_ids)] == example.input_ids:
                starts.append(at)
                at += len(example.input_ids)
            if at >= len(block.input_ids):
                break
        assert all(block.labels[start] == data.IGNORE for start in starts)
    # A label on an example's first token (never trained alone: nothing precedes it) would be
    # learnt from the example before it once packed; it is dropped.
    glued = data.pack([data.Example([5, 6], [5, 6]), data.Example([7, 8], [7, 8])], 10)
    assert glued == [data.Example([5, 6, 7, 8], [data.IGNORE, 6, data.IGNORE, 8])]


def test_gradient_checkpointing_follows_the_flag_and_defaults_to_cuda_only(tmp_path: Path):
    from ftq.shared.providers.local import hyper, trainer

    place = trainer.Place(tmp_path, None)

    def arguments(params: dict[str, Any], device: str = "cpu") -> Any:
        resolved = hyper.resolve(params, 10)
        return trainer._arguments(place, resolved, device, 1, True, False, False)

    assert arguments({}).gradient_checkpointing is False
    assert arguments({"gradient_checkpointing": True}).gradient_checkpointing is True
    early = arguments({"early_stopping_patience": 2, "eval_steps": 5})
    assert (early.load_best_model_at_end, early.metric_for_best_model) == (True, "eval_loss")
    assert (early.eval_steps, early.save_steps) == (5, 5)


def test_gradient_checkpointing_trains_on_cpu_when_asked(local: Path, tmp_path: Path):
    reporter = _train(
        tmp_path, "ckpt", units_rows(4), n_epochs=1, batch_size=2, gradient_checkpointing=True
    )
    assert len(_points(reporter)) == 2


def test_from_checkpoint_continues_from_the_earlier_adapter(local: Path, tmp_path: Path):
    rows = units_rows(16)
    parent = _train(tmp_path, "parent", rows, n_epochs=4, batch_size=2, learning_rate_multiplier=10)
    job_id = f"ftj_parent{tmp_path.name[-12:]}"
    with _recorded(parent.run_id, job_id):
        fresh = _train(tmp_path, "fresh", rows, n_epochs=1, batch_size=2)
        again = _train(tmp_path, "again", rows, n_epochs=1, batch_size=2, from_checkpoint=job_id)
        preferences = [
            {
                "input": {"messages": row["messages"][:2]},
                "preferred_output": row["messages"][2:],
                "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
            }
            for row in rows[:8]
        ]
        dpo = _train(tmp_path, "dpo", preferences, n_epochs=1, batch_size=4, from_checkpoint=job_id)
    assert f"Continuing from the adapter of {job_id}" in _messages(again)
    first_fresh, first_again = _points(fresh)[0]["train_loss"], _points(again)[0]["train_loss"]
    last_parent = _points(parent)[-1]["train_loss"]
    assert first_again < 0.5 * first_fresh, (first_again, first_fresh)
    assert first_again < 1.5 * last_parent + 0.1
    # DPO from the adapter: TRL keeps a frozen copy of it as the reference, so it starts at log 2.
    assert f"Continuing from the adapter of {job_id}" in _messages(dpo)
    assert _points(dpo)[0]["train_loss"] == pytest.approx(0.6931, abs=1e-3)


@contextmanager
def _recorded(run_id: str, job_id: str) -> Iterator[None]:
    """A succeeded run row for an in-process training (the API side makes these for real)."""
    from ftq.shared.db import session_scope

    with session_scope() as session:
        session.add(_run(run_id, job_id, f"local/artifacts/{run_id}"))
    try:
        yield
    finally:
        with session_scope() as session:
            session.delete(session.get(LocalRun, run_id))


def _run(run_id: str, job_id: str, prefix: str | None, model: str = "tiny") -> LocalRun:
    return LocalRun(
        id=run_id,
        ftq_job_id=job_id,
        model=model,
        training_file="file-local-x",
        method={},
        status="succeeded" if prefix else "running",
        artifact_prefix=prefix,
        fine_tuned_model=f"local:{model}:units:{run_id[-8:]}" if prefix else None,
        run_metadata={},
    )


# -- the 422s through POST /v1/jobs ---------------------------------------------------------------


def _dataset(client: TestClient, session: Session, team: dict) -> str:
    dataset = upload(client, team, chat_jsonl(20)).json()
    datasets.run_validation(session, dataset["id"])
    return str(dataset["id"])


def _post(client: TestClient, team: dict, dataset: str, model: str = "tiny", **extra: Any) -> Any:
    method = {"type": "supervised", "hyperparameters": extra.pop("hyper", {})}
    body = {"model": model, "provider": "local", "training_dataset": dataset, "method": method}
    return client.post("/v1/jobs", json={**body, **extra}, headers=auth(team))


def _refused(response: Any, field: str, status: int = 422) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in (error.get("param") or "") or field in error["message"], error
    return str(error["message"])


def test_evaluation_options_need_validation_data_and_valid_values(
    local: Path, client: TestClient, session: Session
):
    team = create_team(client)
    dataset = _dataset(client, session, team)
    for name, value in (("early_stopping_patience", 2), ("eval_steps", 5)):
        message = _refused(_post(client, team, dataset, hyper={name: value}), PARAM + name)
        assert "validation" in message
        split = _post(client, team, dataset, hyper={name: value}, validation_split=0.25)
        assert split.status_code == 201, split.text
    for name, value in (
        ("early_stopping_patience", 0),
        ("early_stopping_min_delta", -0.1),
        ("eval_steps", 0),
        ("packing", "sometimes"),
        ("gradient_checkpointing", "maybe"),
    ):
        _refused(_post(client, team, dataset, hyper={name: value}, validation_split=0.25), name)
    alone = _post(
        client, team, dataset, hyper={"early_stopping_min_delta": 0.01}, validation_split=0.25
    )
    assert "early_stopping_patience" in _refused(alone, PARAM + "early_stopping_min_delta")
    packed = _post(client, team, dataset, hyper={"packing": True, "gradient_checkpointing": True})
    assert packed.status_code == 201, packed.text
    dpo = {"type": "dpo", "hyperparameters": {"packing": True}}
    assert "supervised" in _refused(_post(client, team, dataset, method=dpo), PARAM + "packing")


def test_from_checkpoint_names_an_adapter_of_the_team_on_the_same_base(
    local: Path, client: TestClient, session: Session, tmp_path: Path
):
    from ftq.shared.storage import get_blob_store

    team, other = create_team(client), create_team(client, name="team-b")
    dataset = _dataset(client, session, team)
    parent = _post(client, team, dataset).json()
    run = _run(f"lft_api{tmp_path.name[-12:]}", parent["id"], f"local/artifacts/{tmp_path.name}")
    folder = get_blob_store().path(str(run.artifact_prefix))
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    session.add(run)
    job = session.get(Job, parent["id"])
    assert job is not None
    job.fine_tuned_model = run.fine_tuned_model
    session.flush()
    field = PARAM + "from_checkpoint"

    for reference in (parent["id"], run.fine_tuned_model):
        made = _post(client, team, dataset, hyper={"from_checkpoint": reference})
        assert made.status_code == 201, made.text
        assert made.json()["method"]["hyperparameters"]["from_checkpoint"] == reference
    elsewhere = _post(client, team, dataset, "other", hyper={"from_checkpoint": parent["id"]})
    assert "'tiny'" in _refused(elsewhere, field) and "'other'" in _refused(elsewhere, field)
    early = _post(client, team, dataset, hyper={"from_checkpoint": f"{parent['id']}:4"})
    assert "no kept checkpoint at step 4" in _refused(early, field)
    session.add(LocalCheckpoint(run_id=run.id, step=4, path=str(folder), metrics={}))
    session.flush()
    at_step = _post(client, team, dataset, hyper={"from_checkpoint": f"{parent['id']}:4"})
    assert at_step.status_code == 201, at_step.text
    _refused(_post(client, team, dataset, hyper={"from_checkpoint": "checkpoint-4"}), field)

    theirs = _dataset(client, session, other)
    for reference in (parent["id"], run.fine_tuned_model, f"{parent['id']}:4"):
        leak = _post(client, other, theirs, hyper={"from_checkpoint": reference})
        message = _refused(leak, field, status=404)
        assert "trained on" not in message and "checkpoint steps" not in message, message
