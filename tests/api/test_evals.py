"""Evals over HTTP, run by the worker's task against the emulator through the real `openai` SDK.

The emulator is served on a loopback port (a test double of OpenAI: base models answer a
multiple-choice prompt with a letter hashed from model and prompt, `ft:` models answer the prompts
they were trained on with the trained answer), so scores are deterministic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import evals as eval_tasks
from ftq.services.worker.tasks import jobs as job_tasks
from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import scheduling
from ftq.shared.models import Eval, EvalOutput, Job, JobEvent, WebhookDelivery
from ftq.shared.outbox import relay
from ftq.shared.settings import get_settings, reset_settings
from tests.conftest import SentTasks
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.services import shared_data_or_skip
from tests.unit.test_providers_kit import MODEL, Emulator, run_worker_in
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

OTHER = "gpt-4.1-mini-2025-04-14"
CHAT = "POST /v1/chat/completions"
HOOK = "http://127.0.0.1:9/hook"


class WorkerKilled(BaseException):
    """Stands for the worker process dying mid-eval (no except clause of ours catches it)."""


def mc_line(i: int) -> dict[str, Any]:
    """A multiple-choice chat example whose answer is a letter."""
    options = "\n".join(f"{letter}. option {letter.lower()}{i}" for letter in "ABCD")
    return {
        "messages": [
            {"role": "system", "content": "Answer with the letter only."},
            {"role": "user", "content": f"Question {i}: which option is right?\n{options}"},
            {"role": "assistant", "content": "ABCD"[(i * 7) % 4]},
        ]
    }


def mc_jsonl(n: int = 12) -> bytes:
    """A valid fine-tuning file of n multiple-choice examples."""
    return "".join(json.dumps(mc_line(i)) + "\n" for i in range(n)).encode()


def run_evals_in(
    session: Session, monkeypatch: pytest.MonkeyPatch, served: Emulator
) -> list[tuple[str, list[Any]]]:
    """The evals task on the test session (each unit of work a savepoint), against `served`."""
    sent: list[tuple[str, list[Any]]] = []

    @contextmanager
    def scope() -> Iterator[Session]:
        with session.begin_nested():
            yield session
        session.flush()

    def relay_now() -> int:
        return relay(session, lambda task, args: sent.append((task, list(args))))

    monkeypatch.setattr(eval_tasks, "session_scope", scope)
    monkeypatch.setattr(eval_tasks, "relay_now", relay_now)
    monkeypatch.setattr(eval_tasks, "get_provider", lambda name: served.provider(name))
    return sent


def ready(
    client: TestClient, session: Session, team: dict[str, Any], content: bytes, **fields: str
) -> dict[str, Any]:
    """Upload and validate a dataset; returns its API view."""
    dataset = upload(client, team, content, **fields).json()
    datasets.run_validation(session, dataset["id"])
    return dict(client.get(f"/v1/datasets/{dataset['id']}", headers=auth(team)).json())


def create_eval(client: TestClient, team: dict[str, Any], **body: Any) -> Any:
    """POST /v1/evals."""
    return client.post("/v1/evals", json=body, headers=auth(team))


def eval_events(session: Session, eval_id: str) -> list[dict[str, Any]]:
    """The eval.completed payloads emitted for an eval (one per destination)."""
    query = select(WebhookDelivery.payload).where(WebhookDelivery.event_type == "eval.completed")
    payloads = [json.loads(p)["data"] for p in session.scalars(query)]
    return [p for p in payloads if p["id"] == eval_id]


def lsat(limit: int) -> bytes:
    """The first AR-LSAT records (evals format) of the team's shared data."""
    lines = (shared_data_or_skip() / "ar_lsat.jsonl").read_bytes().splitlines(keepends=True)
    return b"".join(lines[:limit])


def test_eval_scores_models_side_by_side_through_the_sdk(
    client: TestClient,
    session: Session,
    sent_tasks: SentTasks,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    hook = {"url": HOOK, "events": ["eval.completed"]}
    assert client.post("/v1/webhook-endpoints", json=hook, headers=auth(team)).status_code == 201
    dataset = ready(client, session, team, lsat(30), purpose="eval", filename="ar_lsat.jsonl")
    assert dataset["status"] == "ready", dataset["report"]
    created = create_eval(
        client,
        team,
        dataset=dataset["id"],
        models=[MODEL, OTHER],
        grader="choice",
        max_items=20,
        name="lsat",
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["object"] == "eval" and body["id"].startswith("ev_")
    assert body["status"] == "queued" and body["job"] is None and body["error"] is None
    assert [r["model"] for r in body["results"]] == [MODEL, OTHER]
    assert ("evals.run", [body["id"]]) in sent_tasks

    sent = run_evals_in(session, monkeypatch, fresh_emulator)
    started = time.monotonic()
    assert eval_tasks.run(body["id"]) == "finished"
    elapsed = time.monotonic() - started
    assert elapsed >= 39 / get_settings().eval_requests_per_second * 0.95, "rate limited"
    done = client.get(f"/v1/evals/{body['id']}", headers=auth(team)).json()
    assert done["status"] == "completed" and done["completed_at"], done
    for result in done["results"]:
        assert (result["n"], result["completed"], result["errors"]) == (20, 20, 0)
        assert 0.0 <= result["score"] <= 0.7, "base models answer about chance (1 in 5)"
    assert fresh_emulator.calls(CHAT) == 40

    items = client.get(f"/v1/evals/{body['id']}/items", headers=auth(team))
    assert items.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in items.text.splitlines()]
    assert len(lines) == 40
    assert [(x["index"], x["model"]) for x in lines[:3]] == [(0, MODEL), (0, OTHER), (1, MODEL)]
    first = lines[0]
    assert first["prompt"].startswith("Passage:") and first["reference"] in "ABCDE"
    assert first["output"] in "ABCDE" and first["score"] in (0.0, 1.0) and first["error"] is None
    mean = sum(x["score"] for x in lines if x["model"] == MODEL) / 20
    assert done["results"][0]["score"] == pytest.approx(mean)
    only = client.get(f"/v1/evals/{body['id']}/items", params={"model": OTHER}, headers=auth(team))
    assert {json.loads(line)["model"] for line in only.text.splitlines()} == {OTHER}

    [event] = eval_events(session, body["id"])
    assert event["status"] == "completed" and event["dataset"] == dataset["id"]
    assert event["models"] == [MODEL, OTHER] and event["results"] == done["results"]
    assert any(task == "webhooks.deliver" for task, _ in sent)
    assert eval_tasks.run(body["id"]) is None, "a finished eval is not run again"
    assert fresh_emulator.calls(CHAT) == 40
    assert len(eval_events(session, body["id"])) == 1


def test_a_crashed_run_is_resumed_without_asking_again(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(40))
    body = create_eval(
        client, team, dataset=dataset["id"], models=[MODEL], grader="exact", concurrency=2
    ).json()
    run_evals_in(session, monkeypatch, fresh_emulator)
    real_record = eval_tasks.service.record
    calls = {"n": 0}

    def record_then_die(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            raise WorkerKilled
        return real_record(*args, **kwargs)

    monkeypatch.setattr(eval_tasks.service, "record", record_then_die)
    monkeypatch.setattr(eval_tasks.runner, "BATCH_SIZE", 10)
    with pytest.raises(WorkerKilled):
        eval_tasks.run(body["id"])
    stored = session.scalar(select(func.count()).select_from(EvalOutput)) or 0
    assert 0 < stored < 40
    asked_before = fresh_emulator.calls(CHAT)
    monkeypatch.setattr(eval_tasks.service, "record", real_record)

    assert eval_tasks.run(body["id"]) is None, "the dead run's lease still holds"
    row = session.get(Eval, body["id"])
    assert row is not None and row.lease_until is not None
    row.lease_until = row.updated_at = row.created_at - timedelta(hours=1)  # lapsed long ago
    session.flush()
    assert eval_tasks.service.requeue_stale(session) == [body["id"]], "the sweep finds it"
    assert eval_tasks.run(body["id"]) == "finished"
    assert fresh_emulator.calls(CHAT) - asked_before == 40 - stored
    done = client.get(f"/v1/evals/{body['id']}", headers=auth(team)).json()
    assert done["status"] == "completed"
    assert done["results"][0]["completed"] == 40


def test_a_run_that_lost_its_lease_cannot_fail_the_eval_its_successor_holds(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(12))
    body = create_eval(client, team, dataset=dataset["id"], models=[MODEL], grader="exact").json()
    run_evals_in(session, monkeypatch, fresh_emulator)

    def stall_then_crash(eval_id: str, token: str) -> str:
        row = session.get(Eval, eval_id)
        assert row is not None and row.lease_token == token
        row.lease_until = row.created_at - timedelta(hours=1)  # stalled past its lease
        session.flush()
        assert eval_tasks.service.claim(session, eval_id, "successor")
        raise RuntimeError("the stalled run wakes up and crashes")

    monkeypatch.setattr(eval_tasks, "_run_claimed", stall_then_crash)
    eval_tasks.run(body["id"])
    row = session.get(Eval, body["id"])
    assert row is not None
    assert (row.status, row.lease_token, row.error_code) == ("running", "successor", None)
    eval_tasks._fail(body["id"], "successor", "internal_error", "the holder may fail it")
    assert (row.status, row.error_code) == ("failed", "internal_error")


def test_429s_and_5xx_are_retried_and_rejected_models_are_item_errors(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    monkeypatch.setenv("FTQ_EVAL_MAX_RETRIES", "3")
    monkeypatch.setenv("FTQ_EVAL_MAX_BACKOFF_SECONDS", "0.05")
    reset_settings()
    try:
        team = create_team(client)
        dataset = ready(client, session, team, mc_jsonl(12))
        body = create_eval(
            client, team, dataset=dataset["id"], models=[MODEL, "gpt-no-such-model"], grader="exact"
        ).json()
        run_evals_in(session, monkeypatch, fresh_emulator)
        fresh_emulator.control.faults(next_429=3, next_5xx=2, retry_after_ms=1, only=[CHAT])
        assert eval_tasks.run(body["id"]) == "finished"
    finally:
        reset_settings()
    done = client.get(f"/v1/evals/{body['id']}", headers=auth(team)).json()
    base, unknown = done["results"]
    assert done["status"] == "completed"
    assert (base["completed"], base["errors"]) == (12, 0), "429s and 5xx were retried"
    assert (unknown["completed"], unknown["errors"], unknown["score"]) == (12, 12, None)
    lines = client.get(f"/v1/evals/{body['id']}/items", headers=auth(team)).text.splitlines()
    errors = [json.loads(x)["error"] for x in lines if json.loads(x)["model"] != MODEL]
    assert all("does not exist" in e for e in errors)
    assert fresh_emulator.control.stats()["faults_injected"]["429"] == 3


def test_an_eval_nobody_can_answer_fails_with_the_providers_message(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    hook = {"url": HOOK, "events": ["eval.completed"]}
    assert client.post("/v1/webhook-endpoints", json=hook, headers=auth(team)).status_code == 201
    dataset = ready(client, session, team, mc_jsonl(12))
    body = create_eval(
        client, team, dataset=dataset["id"], models=["gpt-no-such-model"], grader="exact"
    ).json()
    run_evals_in(session, monkeypatch, fresh_emulator)
    eval_tasks.run(body["id"])
    done = client.get(f"/v1/evals/{body['id']}", headers=auth(team)).json()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "provider_failed"
    assert "does not exist" in done["error"]["message"]
    assert [e["status"] for e in eval_events(session, body["id"])] == ["failed"]


def test_bad_input_names_the_field_and_other_teams_see_404(
    client: TestClient, session: Session
) -> None:
    team, other = create_team(client), create_team(client, "team-b")
    dataset = ready(client, session, team, chat_jsonl(12))
    good = {"dataset": dataset["id"], "models": [MODEL], "grader": "exact"}

    def error(response: Any) -> tuple[int, str | None]:
        return response.status_code, response.json()["error"]["param"]

    assert error(create_eval(client, team, **{**good, "dataset": "ds_nope"})) == (404, "dataset")
    assert error(create_eval(client, other, **good)) == (404, "dataset")
    assert error(create_eval(client, team, **{**good, "grader": "vibes"})) == (422, "grader")
    assert error(create_eval(client, team, **{**good, "models": []})) == (422, "models")
    six = [f"m{i}" for i in range(6)]
    assert error(create_eval(client, team, **{**good, "models": six})) == (422, "models")
    assert error(create_eval(client, team, **{**good, "concurrency": 1000})) == (
        422,
        "concurrency",
    )
    assert error(create_eval(client, team, **{**good, "provider": "nope"})) == (422, "provider")
    assert error(create_eval(client, team, **{**good, "max_items": 0})) == (422, "max_items")
    waiting = upload(client, team, chat_jsonl(12, offset=50)).json()
    response = create_eval(client, team, **{**good, "dataset": waiting["id"]})
    assert response.status_code == 409 and response.json()["error"]["param"] == "dataset"
    broken = ready(client, session, team, b'{"messages": []}\n')
    assert error(create_eval(client, team, **{**good, "dataset": broken["id"]})) == (
        422,
        "dataset",
    )

    created = create_eval(client, team, **good).json()
    for path in (f"/v1/evals/{created['id']}", f"/v1/evals/{created['id']}/items"):
        assert client.get(path, headers=auth(other)).status_code == 404
        assert client.get(path, headers=auth(team)).status_code == 200
    assert client.get("/v1/evals", headers=auth(other)).json()["data"] == []
    wrong = client.get(
        f"/v1/evals/{created['id']}/items", params={"model": "x"}, headers=auth(team)
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "model"


def test_list_is_newest_first_and_pages(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, chat_jsonl(12))
    ids = [
        create_eval(client, team, dataset=dataset["id"], models=[MODEL], grader="bleu").json()["id"]
        for _ in range(3)
    ]
    first = client.get("/v1/evals", params={"limit": 2}, headers=auth(team)).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    rest = client.get(
        "/v1/evals", params={"limit": 2, "after": first["data"][-1]["id"]}, headers=auth(team)
    ).json()
    assert [e["id"] for e in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_job_with_eval_ends_with_base_and_fine_tuned_scores(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    training = ready(client, session, team, mc_jsonl(12))
    no_validation = client.post(
        "/v1/jobs",
        json={"model": MODEL, "training_dataset": training["id"], "eval": {"grader": "choice"}},
        headers=auth(team),
    )
    assert no_validation.status_code == 422
    assert no_validation.json()["error"]["param"] == "eval.dataset"
    cancelled = client.post(
        "/v1/jobs",
        json={
            "model": MODEL,
            "training_dataset": training["id"],
            "eval": {"grader": "choice", "dataset": training["id"]},
        },
        headers=auth(team),
    ).json()
    client.post(f"/v1/jobs/{cancelled['id']}/cancel", headers=auth(team))
    skipped = client.get(f"/v1/jobs/{cancelled['id']}", headers=auth(team)).json()["eval"]
    assert (skipped["id"], skipped["status"]) == (None, "skipped")
    request = {"grader": "choice", "dataset": training["id"]}
    created = client.post(
        "/v1/jobs",
        json={
            "model": MODEL,
            "training_dataset": training["id"],
            "webhook_url": HOOK,
            "eval": request,
        },
        headers=auth(team),
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["eval"] == {
        "id": None,
        "status": "pending",
        "grader": "choice",
        "dataset": training["id"],
        "results": [],
    }

    sent = run_worker_in(session, monkeypatch, fresh_emulator)
    run_evals_in(session, monkeypatch, fresh_emulator)
    assert [j.id for j in scheduling.schedule(session, "emulator", MODEL)] == [job["id"]]
    provider_job_id = job_tasks.submit_once(job["id"])
    assert provider_job_id is not None
    fresh_emulator.control.advance(provider_job_id)
    assert job_tasks.poll(job["id"]) == "succeeded"
    row = session.get(Job, job["id"])
    assert row is not None and row.eval_id is not None
    assert ("evals.run", [row.eval_id]) in sent
    assert eval_tasks.run(row.eval_id) == "finished"

    final = client.get(f"/v1/jobs/{job['id']}", headers=auth(team)).json()
    assert final["status"] == "succeeded"
    attached = final["eval"]
    assert attached["id"] == row.eval_id and attached["status"] == "completed"
    base, tuned = attached["results"]
    assert (base["model"], tuned["model"]) == (MODEL, final["fine_tuned_model"])
    assert tuned["model"].startswith(f"ft:{MODEL}:")
    assert tuned["score"] == 1.0, "the fine-tuned model answers its training prompts"
    assert base["score"] < tuned["score"]
    assert base["n"] == tuned["n"] == 12
    full = client.get(f"/v1/evals/{row.eval_id}", headers=auth(team)).json()
    assert full["job"] == job["id"] and full["models"] == [MODEL, final["fine_tuned_model"]]
    notes = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job["id"])).all()
    assert any(n.startswith(f"Eval {row.eval_id} queued") for n in notes)
    assert any(n.startswith(f"Eval {row.eval_id} completed") for n in notes)
    hooks = session.scalars(
        select(WebhookDelivery.payload).where(
            WebhookDelivery.job_id == job["id"], WebhookDelivery.event_type == "eval.completed"
        )
    ).all()
    assert len(hooks) == 1, "the job's webhook_url hears eval.completed once"
    assert json.loads(hooks[0])["data"]["results"][1]["score"] == 1.0


def test_a_fine_tuned_model_of_another_team_is_404_in_evals_and_jobs(
    client: TestClient, session: Session
) -> None:
    from ftq.shared.models import JobCheckpoint, Team
    from tests.factories import job_row

    owner, thief = create_team(client, "owner"), create_team(client, "thief")
    tuned = f"ft:{MODEL}:org:mine:abc123"
    snapshot = f"{tuned}:ckpt-step-10"
    owner_row = session.get(Team, owner["id"])
    job = job_row(session, owner_row, status="succeeded", fine_tuned_model=tuned)
    session.add(
        JobCheckpoint(
            job_id=job.id,
            provider_checkpoint_id="ftckpt-1",
            fine_tuned_model_checkpoint=snapshot,
            step_number=10,
        )
    )
    session.flush()
    for team in (owner, thief):
        mine = ready(client, session, team, chat_jsonl(12))
        for model in (tuned, snapshot):
            body = {"dataset": mine["id"], "models": [MODEL, model], "grader": "exact"}
            response = create_eval(client, team, **body)
            expected = 201 if team is owner else 404
            assert response.status_code == expected, response.text
            if team is thief:
                assert response.json()["error"]["param"] == "models.1"
                assert model not in client.get("/v1/evals", headers=auth(thief)).text
        job_request = {"model": tuned, "training_dataset": mine["id"]}
        made = client.post("/v1/jobs", json=job_request, headers=auth(team))
        assert made.status_code == (201 if team is owner else 404), made.text
