"""Checkpoint selection on real processes: `eval.checkpoints` scores every kept checkpoint.

The emulator's checkpoints follow their job's curve (services/emulator/chat.py, quality): on an
`overfit` run the first kept epoch answers best, on a healthy run the final model does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from ftq.services.cli.client import FtqClient
from ftq.services.cli.receiver import WebhookReceiver
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini-2024-07-18"
ITEMS = 40


def _facts(path: Path) -> Path:
    lines = []
    for i in range(ITEMS):
        messages = [
            {"role": "user", "content": f"What is the code word of room {i}?"},
            {"role": "assistant", "content": f"The code word of room {i} is word-{i * 7}."},
        ]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(client: FtqClient, dataset: str, curve: str) -> dict[str, Any]:
    """A three-epoch job with a checkpoint eval, once its eval finished."""
    job = client.request(
        "POST",
        "/v1/jobs",
        json={
            "model": MODEL,
            "training_dataset": dataset,
            "method": {"type": "supervised", "hyperparameters": {"n_epochs": 3}},
            "metadata": {"emulator_curve": curve},
            "eval": {"grader": "exact", "dataset": dataset, "checkpoints": True},
        },
    )
    final = client.wait_job(job["id"], timeout=240)
    assert final["status"] == "succeeded", final
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = client.request("GET", f"/v1/jobs/{job['id']}")
        if seen["eval"]["status"] in ("completed", "failed"):
            return dict(seen)
        time.sleep(0.25)
    raise AssertionError(f"eval of {job['id']} did not finish")


def _checkpoints(client: FtqClient, job: dict[str, Any]) -> dict[str, int]:
    page = client.request("GET", f"/v1/jobs/{job['id']}/checkpoints")
    return {c["fine_tuned_model_checkpoint"]: c["step_number"] for c in page["data"]}


def test_overfit_run_picks_an_earlier_checkpoint_and_healthy_the_final(
    stack: Stack, tmp_path: Path
) -> None:
    receiver = WebhookReceiver().start()
    try:
        admin = FtqClient(stack.url, "dev-admin-token")
        team = admin.create_team("checkpoints-e2e")
        client = FtqClient(stack.url, team["api_key"]["key"])
        hooks = {"url": receiver.url, "events": ["eval.completed"]}
        endpoint = client.request("POST", "/v1/webhook-endpoints", json=hooks)
        dataset = client.wait_dataset(client.upload_dataset(_facts(tmp_path / "f.jsonl"))["id"])
        assert dataset["status"] == "ready", dataset

        overfit = _run(client, dataset["id"], "overfit")
        assert overfit["eval"]["status"] == "completed", stack.logs()
        steps = _checkpoints(client, overfit)
        models = [r["model"] for r in overfit["eval"]["results"]]
        kept = [m for m in sorted(steps, key=steps.__getitem__) if m != overfit["fine_tuned_model"]]
        assert models == [MODEL, *kept, overfit["fine_tuned_model"]]
        assert len(kept) == 2
        assert all(r["interval"] is not None for r in overfit["eval"]["results"])
        assert all(r["comparison"]["against"] == MODEL for r in overfit["eval"]["results"][1:])
        best = overfit["best_checkpoint"]
        assert best["model"] in kept and best["step"] < max(steps.values())
        scores = {r["model"]: r["score"] for r in overfit["eval"]["results"]}
        assert best["score"] == scores[best["model"]] > scores[overfit["fine_tuned_model"]]

        hook = receiver.wait_for("eval.completed", timeout=60)
        payload = dict(Webhook(endpoint["secret"]).verify(hook.body, hook.headers))
        assert payload["data"]["best_checkpoint"] == best

        healthy = _run(client, dataset["id"], "healthy")
        assert healthy["eval"]["status"] == "completed", stack.logs()
        assert len(healthy["eval"]["results"]) == 4
        assert healthy["best_checkpoint"]["model"] == healthy["fine_tuned_model"]
        assert healthy["best_checkpoint"]["step"] == max(_checkpoints(client, healthy).values())

        chat = client.request(
            "POST",
            "/v1/chat/completions",
            json={"model": best["model"], "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat["model"] == best["model"] and chat["choices"][0]["message"]["content"]
    finally:
        receiver.stop()
