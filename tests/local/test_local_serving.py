"""A tuned local model and each of its checkpoints answer `POST /v1/chat/completions` in OpenAI's
shape (the SDK reads them), streamed too, through the transformers backend on CPU; another team
gets a 404."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ftq.shared.models import JobCheckpoint, Team
from ftq.shared.providers.base import JobSpec
from ftq.shared.settings import reset_settings
from tests.factories import auth, create_team, job_row
from tests.local.helpers import FAST_ENV, build_tiny, jsonl, require_local_stack, units_rows

QUESTION = [{"role": "user", "content": "How many metres is 3 kilometres?"}]


@dataclass(frozen=True)
class Trained:
    """A succeeded local run and the team's job row that made it."""

    team: dict
    job_id: str
    model: str
    checkpoints: list[str]


def local_settings(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny model allowed, fast reports, work files under `folder`."""
    for key, value in {
        **FAST_ENV,
        "FTQ_LOCAL_ENABLED": "true",
        "FTQ_LOCAL_WORK_DIR": str(folder / "work"),
        "FTQ_LOCAL_MODELS": json.dumps({"tiny": str(folder / "tiny")}),
        "FTQ_LOCAL_SERVING_BACKEND": "transformers",
    }.items():
        monkeypatch.setenv(key, value)
    reset_settings()


def train_tiny_job(client: TestClient, session: Session, folder: Path, name: str) -> Trained:
    """Train the tiny model in-process (two epochs, 24 steps) for a new team's job row."""
    from ftq.shared.providers.local.provider import LocalProvider
    from ftq.shared.providers.local.trainer import run_training

    build_tiny(folder / "tiny")
    data = folder / "units.jsonl"
    data.write_bytes(jsonl(units_rows(12)))
    provider = LocalProvider()
    file_id = provider.upload_file(data, f"ftq-{name}.jsonl")
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    spec = JobSpec(ftq_job_id=f"ftj_{name}", model="tiny", training_file=file_id, method=method)
    run = provider.create_job(spec)
    assert run_training(run.id) == "succeeded"
    done = provider.get_job(run.id)
    assert done.fine_tuned_model
    team = create_team(client, name=name)
    row = job_row(
        session,
        session.get(Team, team["id"]),
        status="succeeded",
        provider_job_id=run.id,
        fine_tuned_model=done.fine_tuned_model,
    )
    row.provider, row.model = "local", "tiny"
    names = []
    for kept in provider.list_checkpoints(run.id):
        names.append(kept.fine_tuned_model_checkpoint)
        session.add(
            JobCheckpoint(
                job_id=row.id,
                provider_checkpoint_id=kept.id,
                step_number=kept.step_number,
                fine_tuned_model_checkpoint=kept.fine_tuned_model_checkpoint,
                metrics={},
            )
        )
    session.flush()
    return Trained(team, row.id, done.fine_tuned_model, names)


@pytest.fixture
def trained(
    client: TestClient,
    session: Session,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Trained]:
    """A succeeded tiny local job owned by a team."""
    require_local_stack()
    from ftq.shared.providers.local import inference

    local_settings(tmp_path, monkeypatch)
    inference.reset_backend()
    # Local runs are committed by the provider: a fresh job id per test keeps them apart.
    yield train_tiny_job(client, session, tmp_path, f"serving-{uuid.uuid4().hex[:8]}")
    inference.reset_backend()
    reset_settings()


def _chat(client: TestClient, team: dict, model: str, **extra: object) -> dict:
    body = {"model": model, "messages": QUESTION, "max_tokens": 8, **extra}
    answer = client.post("/v1/chat/completions", json=body, headers=auth(team))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _streamed(client: TestClient, team: dict, model: str) -> tuple[str, list[dict]]:
    body = {
        "model": model,
        "messages": QUESTION,
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    answer = client.post("/v1/chat/completions", json=body, headers=auth(team))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.endswith("data: [DONE]\n\n")
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in answer.text.split("\n\n")
        if line.startswith("data: {")
    ]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, chunks


def test_the_tuned_model_and_its_checkpoints_answer_the_chat_route(
    client: TestClient, trained: Trained
) -> None:
    from ftq.shared.providers.local import inference

    assert len(trained.checkpoints) == 2 and trained.checkpoints[0].endswith(":ckpt-step-12")
    answers = {}
    for name in (trained.model, *trained.checkpoints):
        completion = _chat(client, trained.team, name)
        assert completion["object"] == "chat.completion" and completion["model"] == name
        choice = completion["choices"][0]
        assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
        usage = completion["usage"]
        assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        answers[name] = choice["message"]["content"]
    assert inference.backend().name == "transformers"

    text, chunks = _streamed(client, trained.team, trained.model)
    assert text.strip() == answers[trained.model], "the stream says what the completion says"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["usage"]["completion_tokens"] > 0

    other = create_team(client, name="someone-else")
    refused = client.post(
        "/v1/chat/completions",
        json={"model": trained.model, "messages": QUESTION},
        headers=auth(other),
    )
    assert refused.status_code == 404
    missing = client.post(
        "/v1/chat/completions",
        json={"model": f"{trained.model}:ckpt-step-5", "messages": QUESTION},
        headers=auth(trained.team),
    )
    assert missing.status_code == 404


def test_a_stream_sends_pieces_while_the_model_is_still_generating(trained: Trained) -> None:
    import threading

    from ftq.shared.providers.local.provider import LocalProvider

    body = {"model": trained.model, "messages": QUESTION, "max_tokens": 48, "stream": True}
    events = LocalProvider().chat_completion_stream(body)
    assert json.loads(next(events).removeprefix(b"data: "))["choices"][0]["delta"]["role"]
    first = json.loads(next(events).removeprefix(b"data: "))
    assert first["choices"][0]["delta"]["content"]
    generating = [t for t in threading.enumerate() if t.name == "ftq-generate"]
    assert generating and generating[0].is_alive(), "the first piece came before the last token"
    rest = b"".join(events)
    assert rest.endswith(b"data: [DONE]\n\n")
    assert not [t for t in threading.enumerate() if t.name == "ftq-generate"]
