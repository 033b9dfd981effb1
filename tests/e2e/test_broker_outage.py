"""Redis down: the API still accepts datasets and jobs (outbox); once it is back they run.

The same run checks the production observability: JSON logs with request and job ids and no
secrets in any process's output, the worker's own /metrics port, and the API's /metrics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from ftq.services.cli.client import FtqClient
from ftq.shared.serving import free_port
from tests.drill.harness import RedisServer
from tests.e2e.stack import BIN, ROOT, Stack, base_env
from tests.factories import chat_jsonl
from tests.services import drop_database, fresh_database, postgres_url_or_skip

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini-2024-07-18"
ADMIN_TOKEN = "admin-token-for-outage-test-0123456789"


def _start(stack: Stack, redis: RedisServer, worker_metrics: int) -> None:
    import subprocess

    database_url = fresh_database("ftq_outage")
    stack.cleanups.callback(drop_database, database_url)
    emulator_port, api_port = free_port(), free_port()
    env = base_env(
        stack.workdir / "data",
        FTQ_DATABASE_URL=database_url,
        FTQ_BROKER_URL=redis.url,
        FTQ_EMULATOR_URL=f"http://127.0.0.1:{emulator_port}/v1",
        FTQ_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
        FTQ_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    subprocess.run([str(BIN / "ftq"), "migrate"], cwd=ROOT, env=env, check=True)
    emulator = [str(BIN / "python"), "-m", "ftq.services.emulator", "--port", str(emulator_port)]
    stack.spawn("emulator", [*emulator, "--speed", "300"], env)
    api = [str(BIN / "uvicorn"), "ftq.services.api.main:app", "--port", str(api_port)]
    stack.spawn("api", api, env)
    celery = [str(BIN / "celery"), "-A", "ftq.services.worker.celery_app"]
    worker = ["worker", "-Q", "validate,provider,webhooks,evals", "-P", "threads", "-c", "4"]
    worker_env = {**env, "FTQ_WORKER_METRICS_PORT": str(worker_metrics)}
    stack.spawn("worker", [*celery, *worker, "--without-gossip", "--without-mingle"], worker_env)
    stack.spawn("beat", [*celery, "beat", "-s", str(stack.workdir / "beat-schedule")], env)
    stack.url = f"http://127.0.0.1:{api_port}"
    stack.wait_http(f"http://127.0.0.1:{emulator_port}/v1/files")
    stack.wait_http(f"{stack.url}/healthz")


def test_jobs_accepted_while_redis_is_down_run_once_it_is_back(tmp_path: Path) -> None:
    postgres_url_or_skip()
    redis = RedisServer(tmp_path / "redis")  # its port is reserved, its server not started
    worker_metrics = free_port()
    stack = Stack(tmp_path)
    try:
        _start(stack, redis, worker_metrics)
        assert httpx.get(f"{stack.url}/readyz", trust_env=False).status_code == 503
        admin = FtqClient(stack.url, ADMIN_TOKEN)
        team = admin.create_team("outage")
        key = team["api_key"]["key"]
        client = FtqClient(stack.url, key)
        data = tmp_path / "train.jsonl"
        data.write_bytes(chat_jsonl(20))
        started = time.monotonic()
        dataset = client.upload_dataset(data)
        job = client.request(
            "POST", "/v1/jobs", json={"model": MODEL, "training_dataset": dataset["id"]}
        )
        accepted_in = time.monotonic() - started
        assert (dataset["status"], job["status"]) == ("validating", "queued")
        time.sleep(2)  # beat's relay keeps failing meanwhile: nothing is lost
        assert client.request("GET", f"/v1/jobs/{job['id']}")["status"] == "queued"

        redis.start()
        final = client.wait_job(job["id"], timeout=180)
        assert final["status"] == "succeeded", stack.logs()
        print(f"\naccepted dataset + job with Redis down in {accepted_in:.2f} s")

        _check_metrics(stack.url, worker_metrics)
        _check_logs(stack, secrets=[key, ADMIN_TOKEN], job_id=job["id"])
    finally:
        stack.stop()
        redis.stop()


def _check_metrics(api_url: str, worker_port: int) -> None:
    api = httpx.get(f"{api_url}/metrics", trust_env=False).text
    assert 'ftq_jobs{status="succeeded"} 1.0' in api
    assert "ftq_broker_up 1.0" in api
    assert 'ftq_queue_depth{queue="provider"}' in api
    assert 'route="/v1/jobs/{job_id}"' in api
    worker = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", trust_env=False).text
    assert (
        'ftq_provider_calls_total{operation="create_job",outcome="ok",provider="emulator"}'
        in worker
    )
    assert "ftq_validation_bytes_total" in worker


def _check_logs(stack: Stack, secrets: list[str], job_id: str) -> None:
    for name in ("api", "worker", "beat"):
        text = (stack.workdir / f"{name}.log").read_text()
        for secret in secrets:
            assert secret not in text, f"a secret leaked into the {name} log"
    lines = [ln for ln in (stack.workdir / "worker.log").read_text().splitlines() if ln.strip()]
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert records and all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    api_lines = (stack.workdir / "api.log").read_text().splitlines()
    access = [json.loads(ln) for ln in api_lines if ln.startswith('{"') and "ftq.access" in ln]
    assert any(r.get("request_id", "").startswith("req_") and r.get("team_id") for r in access)
    assert job_id  # worker lines name their job when one logs; see tests/api/test_logging.py
