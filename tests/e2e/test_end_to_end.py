"""A job from POST to verified webhook, on the embedded default and on Postgres + Redis + Celery."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from ftq.services.cli.client import FtqClient
from ftq.services.cli.receiver import WebhookReceiver
from tests.e2e.human_output import assert_for_people, assert_logs_in_file, probe_env
from tests.e2e.stack import BIN, ROOT, Stack, base_env, start_distributed, start_embedded
from tests.factories import chat_jsonl
from tests.services import postgres_url_or_skip, redis_url_or_skip

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A local webhook receiver."""
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


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


def test_job_runs_from_post_to_verified_webhook(
    stack: Stack, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    admin = FtqClient(stack.url, "dev-admin-token")
    team = admin.create_team("e2e")
    client = FtqClient(stack.url, team["api_key"]["key"])
    endpoint = client.request(
        "POST", "/v1/webhook-endpoints", json={"url": receiver.url, "events": ["job.succeeded"]}
    )
    receiver.secrets += [endpoint["secret"], team["signing_secret"]]
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_jsonl(20))
    dataset = client.wait_dataset(client.upload_dataset(data)["id"])
    assert dataset["status"] == "ready", dataset
    job = client.request(
        "POST",
        "/v1/jobs",
        json={
            "model": MODEL,
            "training_dataset": dataset["id"],
            "suffix": "e2e",
            "webhook_url": receiver.url,
            "metadata": {"run": "e2e"},
        },
    )
    statuses: list[str] = []
    final = client.wait_job(
        job["id"], timeout=180, on_change=lambda j: statuses.append(j["status"])
    )
    assert final["status"] == "succeeded", stack.logs()
    assert final["fine_tuned_model"].startswith(f"ft:{MODEL}:")
    assert final["provider_job_id"].startswith("ftjob-")
    assert statuses[-1] == "succeeded" and len(statuses) >= 2

    events = client.list_all(f"/v1/jobs/{job['id']}/events")
    messages = [e["message"] for e in events]
    assert any(m.startswith("Submitted to emulator as ftjob-") for m in messages)
    assert any(e["type"] == "metrics" and e["source"] == "provider" for e in events)
    assert "The job has successfully completed" in messages
    assert len({e["id"] for e in events}) == len(events)
    metrics = client.request("GET", f"/v1/jobs/{job['id']}/metrics")["data"]
    steps = [m["step"] for m in metrics]
    assert steps == sorted(set(steps)) and steps[-1] == metrics[-1]["total_steps"]
    assert all(isinstance(m["train_loss"], float) for m in metrics)

    hooks = _wait_count(receiver, "job.succeeded", 2)
    assert len({h.headers["webhook-id"] for h in hooks}) == 1, "one event id for both targets"
    for secret in (endpoint["secret"], team["signing_secret"]):
        signed = [h for h in hooks if _verifies(secret, h)]
        assert len(signed) == 1, "each destination gets one delivery signed with its secret"
        payload = dict(Webhook(secret).verify(signed[0].body, signed[0].headers))
        assert payload["type"] == "job.succeeded"
        assert payload["data"]["id"] == job["id"]
        assert payload["data"]["fine_tuned_model"] == final["fine_tuned_model"]
        assert payload["data"]["metadata"] == {"run": "e2e"}


def _verifies(secret: str, hook: Any) -> bool:
    try:
        Webhook(secret).verify(hook.body, hook.headers)
    except Exception:
        return False
    return True


def _wait_count(receiver: WebhookReceiver, event_type: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with receiver.lock:
            found = [h for h in receiver.received if h.event["type"] == event_type]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"only {len(found)} {event_type} webhooks arrived")


def test_ftq_demo_runs_the_whole_path(tmp_path: Path) -> None:
    probe, heavy_imports = probe_env(tmp_path)
    result = subprocess.run(
        [str(BIN / "ftq"), "demo", "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT,
        env=base_env(tmp_path, **probe),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert "verified" in result.stdout
    assert "demo complete" in result.stdout
    assert "payload job.succeeded: job ftj_" in result.stdout
    # Issue 19: output for people, the server's logs in the data folder, no torch imported.
    assert_for_people(result.stdout, result.stderr)
    assert f"server logs: {tmp_path / 'demo' / 'ftq.log'}" in result.stdout
    assert_logs_in_file(tmp_path / "demo" / "ftq.log")
    assert heavy_imports.read_text() == "", "the emulator demo imports no torch stack"
    # Issue 16: the data's quality section, the run's diagnosis, the checkpoint table.
    assert "Quality (warnings only)" in result.stdout and "near duplicates" in result.stdout
    assert "overfitting:" in result.stdout and "next run: n_epochs=" in result.stdout
    checkpoints = result.stdout[result.stdout.index("Base, each checkpoint and the final") :]
    assert "★ best checkpoint" in checkpoints, "the overfit run's best is an earlier epoch"
    assert "best checkpoint ft:" in checkpoints and ":ckpt-step-" in checkpoints
    # It ends with a 3-trial sweep: its table, one row per n_epochs, the winner starred.
    table = result.stdout[result.stdout.index("Sweep swp_") :]
    assert "sweep completed; winner ftj_" in table
    assert table.count("succeeded") >= 3 and table.count("★") >= 2


def test_ftq_demo_runs_the_whole_path_on_together(tmp_path: Path) -> None:
    """Upload, job, events, checkpoints, a verified webhook and the eval table, on Together."""
    result = subprocess.run(
        [str(BIN / "ftq"), "demo", "--provider", "together", "--data-dir", str(tmp_path / "d")],
        cwd=ROOT,
        env={**base_env(tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert_for_people(out, result.stderr)
    assert "queued on together (meta-llama/Meta-Llama-3.1-8B-Instruct-Reference)" in out
    assert "token counts: estimate" in out, "Llama's tokenizer is not installed: said plainly"
    assert "-ftj-" in out, "the tuned Together model carries ftq's job tag"
    assert "checkpoint at step" in out
    assert "signature verified" in out and "demo complete" in out
    assert "eval completed" in out
