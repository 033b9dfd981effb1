"""Retention checks of a job (`eval.retention`), driven on the emulator through the API.

The emulator's fine-tuned model answers the prompts its training file taught with the taught
reply and any other multiple-choice prompt with a hashed letter, like its base model. So a job
trained on the suite's own questions with wrong letters has honestly forgotten them: it scores 0
where the base scores about chance, and the check must warn. A job trained on the right answers of
a team's suite improves on it and must not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import evals as eval_tasks
from ftq.services.worker.tasks import jobs as job_tasks
from ftq.shared.evals import retention
from ftq.shared.jobs import scheduling
from ftq.shared.models import Eval, Job, JobEvent, WebhookDelivery
from ftq.shared.settings import get_settings
from tests.api.test_evals import HOOK, mc_jsonl, ready, run_evals_in
from tests.factories import auth, create_team
from tests.unit.test_providers_kit import MODEL, Emulator, run_worker_in
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

ITEMS = 30


def forgetting_jsonl(n: int) -> bytes:
    """The suite's first seeded sample of n questions, each taught with a wrong letter."""
    lines = []
    for raw in retention.sample(retention.load_suite().records, n):
        item = json.loads(raw)
        wrong = "B" if item["ideal"] == "A" else "A"
        messages = [*item["input"], {"role": "assistant", "content": wrong}]
        lines.append(json.dumps({"messages": messages}) + "\n")
    return "".join(lines).encode()


def train(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    served: Emulator,
    team: dict[str, Any],
    body: dict[str, Any],
) -> dict[str, Any]:
    """Create a job, run it to success and run every eval it queued; its final API view."""
    created = client.post("/v1/jobs", json=body, headers=auth(team))
    assert created.status_code == 201, created.text
    assert created.json()["retention"] is None, "nothing is known before the job succeeds"
    return finish(client, session, monkeypatch, served, team, created.json()["id"])


def finish(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    served: Emulator,
    team: dict[str, Any],
    job_id: str,
) -> dict[str, Any]:
    """Run a created job to success and every eval it queued; its final API view."""
    sent = run_worker_in(session, monkeypatch, served)
    run_evals_in(session, monkeypatch, served)
    assert [j.id for j in scheduling.schedule(session, "emulator", MODEL)] == [job_id]
    provider_job_id = job_tasks.submit_once(job_id)
    assert provider_job_id is not None
    served.control.advance(provider_job_id)
    assert job_tasks.poll(job_id) == "succeeded"
    row = session.get(Job, job_id)
    assert row is not None and row.eval_id is not None and row.retention is not None
    check = row.retention["eval_id"]
    assert check != row.eval_id
    assert ("evals.run", [row.eval_id]) in sent and ("evals.run", [check]) in sent
    assert eval_tasks.run(row.eval_id) == "finished"
    assert eval_tasks.run(check) == "finished"
    return dict(client.get(f"/v1/jobs/{job_id}", headers=auth(team)).json())


def payloads(session: Session, job_id: str, event_type: str) -> list[dict[str, Any]]:
    """The data of the webhooks of one type sent to the job's webhook_url."""
    query = select(WebhookDelivery.payload).where(
        WebhookDelivery.job_id == job_id, WebhookDelivery.event_type == event_type
    )
    return [json.loads(p)["data"] for p in session.scalars(query)]


def events(session: Session, job_id: str) -> list[tuple[str, str]]:
    """(level, message) of the job's timeline."""
    query = select(JobEvent.level, JobEvent.message).where(JobEvent.job_id == job_id)
    return [(level, message) for level, message in session.execute(query)]


def test_a_job_that_forgot_the_suite_ends_with_retention_and_a_warning(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    training = ready(client, session, team, forgetting_jsonl(ITEMS))
    body = {
        "model": MODEL,
        "training_dataset": training["id"],
        "webhook_url": HOOK,
        "eval": {
            "grader": "choice",
            "dataset": training["id"],
            "retention": True,
            "retention_max_items": ITEMS,
        },
    }
    final = train(client, session, monkeypatch, fresh_emulator, team, body)

    found = final["retention"]
    assert found["status"] == "completed" and found["items"] == ITEMS
    assert found["suite"] == retention.load_suite().info()
    assert found["tuned_score"] == 0.0, "it answers the suite's questions as it was taught: wrong"
    assert found["base_score"] > get_settings().retention_warn_drop
    assert found["delta"] == pytest.approx(found["tuned_score"] - found["base_score"], abs=1e-6)
    low, high = found["interval"]
    assert low <= found["delta"] <= high < 0
    assert found["warning"].startswith(f"the tuned model lost {-found['delta']:.3f}")
    check = session.get(Eval, found["eval_id"])
    assert check is not None and check.job_id == final["id"] and check.grader == "choice"
    assert check.models == [MODEL, final["fine_tuned_model"]] and check.n_items == ITEMS
    assert final["eval"]["id"] != found["eval_id"], "the job's own eval is untouched"
    assert len(final["eval"]["results"]) == 2

    timeline = events(session, final["id"])
    assert ("info", f"Retention check {found['eval_id']} queued on ftq-general-v1") in timeline
    assert ("warn", f"Retention warning: {found['warning']}") in timeline

    (succeeded,) = payloads(session, final["id"], "job.succeeded")
    assert succeeded["retention"] == {
        "status": "queued",
        "eval_id": found["eval_id"],
        "suite": found["suite"],
    }
    completed = {p["id"]: p for p in payloads(session, final["id"], "eval.completed")}
    assert completed[found["eval_id"]]["retention"] == found
    assert "retention" not in completed[final["eval"]["id"]]

    items = client.get(f"/v1/evals/{found['eval_id']}/items", headers=auth(team))
    first = json.loads(items.text.splitlines()[0])
    first_item = json.loads(retention.sample(retention.load_suite().records, ITEMS)[0])
    assert first["prompt"] == first_item["input"][0]["content"], "the seeded sample, in order"


def test_a_teams_own_suite_that_improved_gives_no_warning_and_bad_requests_are_refused(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    other = create_team(client, "team-b")
    training = ready(client, session, team, mc_jsonl(12))
    reordered = b"".join(reversed(mc_jsonl(12).splitlines(keepends=True)))  # not a duplicate
    own = ready(client, session, team, reordered, filename="skills.jsonl")
    theirs = ready(client, session, other, mc_jsonl(12))

    def create(extra: dict[str, Any]) -> Any:
        request = {"grader": "choice", "dataset": training["id"], **extra}
        body = {"model": MODEL, "training_dataset": training["id"], "eval": request}
        return client.post("/v1/jobs", json=body, headers=auth(team))

    refused = create({"retention_dataset": theirs["id"]})
    assert refused.status_code == 404
    assert refused.json()["error"]["param"] == "eval.retention_dataset"
    assert create({"retention": True, "retention_grader": "exact"}).status_code == 422
    assert create({"retention": True, "retention_max_items": 0}).status_code == 422

    body = {
        "model": MODEL,
        "training_dataset": training["id"],
        "eval": {"grader": "choice", "dataset": training["id"], "retention_dataset": own["id"]},
    }
    final = train(client, session, monkeypatch, fresh_emulator, team, body)
    found = final["retention"]
    assert found["suite"] == {
        "name": "skills.jsonl",
        "source": f"team dataset {own['id']}",
        "licence": None,
    }
    assert found["items"] == 12 and found["tuned_score"] == 1.0
    assert found["delta"] > 0 and found["warning"] is None
    timeline = events(session, final["id"])
    assert not [m for level, m in timeline if level == "warn" and "Retention" in m]
    assert any(m.startswith("Retention on 12 items: base") for _, m in timeline)


def test_a_check_whose_suite_was_deleted_fails_on_the_job_without_scores(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    training = ready(client, session, team, mc_jsonl(12))
    reordered = b"".join(reversed(mc_jsonl(12).splitlines(keepends=True)))
    own = ready(client, session, team, reordered, filename="skills.jsonl")
    body = {
        "model": MODEL,
        "training_dataset": training["id"],
        "eval": {"grader": "choice", "dataset": training["id"], "retention_dataset": own["id"]},
    }
    created = client.post("/v1/jobs", json=body, headers=auth(team))
    assert created.status_code == 201, created.text
    gone = client.delete(f"/v1/datasets/{own['id']}", headers=auth(team))
    assert gone.status_code == 204, gone.text
    final = finish(client, session, monkeypatch, fresh_emulator, team, created.json()["id"])
    found = final["retention"]
    assert found["status"] == "failed" and "no longer exists" in found["error"]
    assert "base_score" not in found and found["warning"] is None
    assert final["eval"]["status"] == "completed", "the job's own eval is unaffected"
    assert ("warn", f"Retention check {found['eval_id']} failed") in events(session, final["id"])
