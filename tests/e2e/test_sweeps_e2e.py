"""A 3-trial sweep on real processes (`ftq up` on the emulator): the best-scoring trial wins.

Trials are scored on multiple-choice questions they were not trained on, where the emulator's
fine-tuned models answer by a hash of (model, prompt): each trial gets its own score.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ftq.services.cli.client import FtqClient
from ftq.services.cli.receiver import WebhookReceiver
from tests.e2e.stack import Stack, letter_questions

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini-2024-07-18"


def test_three_trial_sweep_picks_the_best_score_and_notifies_once(
    stack: Stack, tmp_path: Path
) -> None:
    receiver = WebhookReceiver().start()
    try:
        admin = FtqClient(stack.url, "dev-admin-token")
        team = admin.create_team("sweeps-e2e")
        client = FtqClient(stack.url, team["api_key"]["key"])
        endpoint = client.request(
            "POST",
            "/v1/webhook-endpoints",
            json={"url": receiver.url, "events": ["sweep.completed"]},
        )
        receiver.secrets.append(endpoint["secret"])
        train = client.wait_dataset(
            client.upload_dataset(letter_questions(tmp_path / "t.jsonl", 12), model=MODEL)["id"]
        )
        held_out = client.wait_dataset(
            client.upload_dataset(letter_questions(tmp_path / "v.jsonl", 40, offset=1000))["id"]
        )
        sweep = client.request(
            "POST",
            "/v1/sweeps",
            json={
                "base": {"model": MODEL, "training_dataset": train["id"]},
                "search": {"type": "grid", "space": {"n_epochs": [1, 2, 3]}},
                "eval": {"grader": "choice", "dataset": held_out["id"]},
            },
        )
        done = client.wait(
            f"/v1/sweeps/{sweep['id']}", lambda s: s["status"] != "running", timeout=240
        )
        assert done["status"] == "completed", stack.logs()
        trials = done["trials"]
        assert [t["hyperparameters"]["n_epochs"] for t in trials] == [1, 2, 3]
        assert all(t["status"] == "succeeded" and t["score"] is not None for t in trials)
        best = max(trials, key=lambda t: (t["score"], -float(t["cost_usd"])))
        assert done["best_job_id"] == best["job_id"]

        hook = receiver.wait_for("sweep.completed", timeout=60)
        assert hook.verified
        assert hook.event["data"]["winner"]["job_id"] == best["job_id"]
        assert len(hook.event["data"]["trials"]) == 3
        time.sleep(3)  # several beat ticks later: still exactly one
        assert len([r for r in receiver.received if r.event.get("type") == "sweep.completed"]) == 1
    finally:
        receiver.stop()
