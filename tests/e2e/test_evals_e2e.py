"""A job that asks for an eval, on real processes: it ends with base and fine-tuned scores attached.

The emulator (a test double of OpenAI) answers trained prompts with the trained answer, so the
fine-tuned model scores 1.0 on its training prompts and the base model about chance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from ftq.services.cli.client import FtqClient
from ftq.services.cli.receiver import WebhookReceiver
from tests.e2e.stack import Stack, letter_questions, start_distributed, start_embedded
from tests.services import postgres_url_or_skip, redis_url_or_skip

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture(params=["embedded", "postgres-redis"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The stack under test, in both deployment modes."""
    if request.param == "embedded":
        running = start_embedded(tmp_path)
    else:
        postgres_url_or_skip()
        running = start_distributed(tmp_path, redis_url_or_skip())
    try:
        yield running
    finally:
        running.stop()


def _wait_eval(client: FtqClient, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """A job's eval once it finished."""
    deadline = time.monotonic() + timeout
    while True:
        attached = client.request("GET", f"/v1/jobs/{job_id}")["eval"]
        if attached["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return dict(attached)
        time.sleep(0.25)


def test_job_with_eval_attaches_base_and_fine_tuned_scores(stack: Stack, tmp_path: Path) -> None:
    receiver = WebhookReceiver().start()
    try:
        admin = FtqClient(stack.url, "dev-admin-token")
        team = admin.create_team("evals-e2e")
        client = FtqClient(stack.url, team["api_key"]["key"])
        endpoint = client.request(
            "POST",
            "/v1/webhook-endpoints",
            json={"url": receiver.url, "events": ["eval.completed"]},
        )
        dataset = client.wait_dataset(
            client.upload_dataset(letter_questions(tmp_path / "mc.jsonl", 12))["id"]
        )
        assert dataset["status"] == "ready", dataset
        job = client.request(
            "POST",
            "/v1/jobs",
            json={
                "model": MODEL,
                "training_dataset": dataset["id"],
                "method": {"type": "supervised", "hyperparameters": {"n_epochs": 1}},
                "eval": {"grader": "choice", "dataset": dataset["id"]},
            },
        )
        final = client.wait_job(job["id"], timeout=180)
        assert final["status"] == "succeeded", stack.logs()
        attached = _wait_eval(client, job["id"])
        assert attached["status"] == "completed", stack.logs()
        base, tuned = attached["results"]
        assert (base["model"], tuned["model"]) == (MODEL, final["fine_tuned_model"])
        assert tuned["score"] == 1.0 and base["score"] < 1.0
        assert base["completed"] == tuned["completed"] == 12

        hook = receiver.wait_for("eval.completed", timeout=60)
        payload = dict(Webhook(endpoint["secret"]).verify(hook.body, hook.headers))
        assert payload["data"]["id"] == attached["id"]
        assert payload["data"]["job"] == job["id"]
        items = client.http.get(f"/v1/evals/{attached['id']}/items")
        assert items.status_code == 200 and len(items.text.splitlines()) == 24
    finally:
        receiver.stop()
