"""`ftq demo`: the whole path once, on the embedded stack, with a signed webhook at the end."""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from ftq.services.cli import progress
from ftq.services.cli.client import FtqClient
from ftq.services.cli.demo.results import checkpoint_table, show_diagnosis, show_quality
from ftq.services.cli.demo.sweep import run_sweep
from ftq.services.cli.receiver import WebhookReceiver
from ftq.shared.observability.logging import configure_cli_logging
from ftq.shared.serving import free_port, serve_in_thread

DEMO_DATASET = "unit_conversions.jsonl"
LOG_FILE = "ftq.log"  # the embedded API's and worker's logs, in the demo's data folder
HELD_OUT = 0.3  # share of the dataset kept out of training and used for the eval
EVAL_GRADER = "rouge_l"
# The model each hosted demo provider tunes (both served by the in-process emulator).
DEMO_MODELS = {
    "emulator": "gpt-4o-mini-2024-07-18",
    "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
}


def demo_environment(data_dir: Path, port: int) -> dict[str, str]:
    """Settings for a fast, self-contained demo run."""
    return {
        "FTQ_DATA_DIR": str(data_dir),
        "FTQ_PORT": str(port),
        "FTQ_HOST": "127.0.0.1",
        "FTQ_POLL_INTERVAL_SECONDS": "0.5",
        "FTQ_SWEEP_INTERVAL_SECONDS": "0.5",
        "FTQ_EMULATOR_SPEED": os.environ.get("FTQ_EMULATOR_SPEED", "120"),
        "FTQ_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
    }


def provider_environment(provider: str, port: int) -> dict[str, str]:
    """Point a hosted provider at the in-process emulator (Together's API under /together)."""
    if provider == "together":
        return {
            "FTQ_TOGETHER_BASE_URL": f"http://127.0.0.1:{port}/emulator/together",
            "FTQ_TOGETHER_API_KEY": "emulator",
        }
    return {}


def run_demo(data_dir: Path, console: Console, provider: str = "emulator") -> dict[str, Any]:
    """Start the embedded stack, run one job end to end on `provider`, return what happened."""
    if provider not in DEMO_MODELS:
        raise ValueError(f"the demo runs on {', '.join(DEMO_MODELS)} or local, not {provider!r}")
    port = free_port()
    os.environ.update(demo_environment(data_dir, port))
    os.environ.update(provider_environment(provider, port))
    from ftq.shared.db import reset_engine
    from ftq.shared.settings import get_settings, reset_settings

    reset_settings()
    reset_engine()
    from ftq.services.api.main import create_app

    settings = get_settings()
    log_file = configure_cli_logging(data_dir / LOG_FILE, settings)
    console.print(
        f"[bold]ftq demo[/] on {provider}: data in {data_dir}, API on {settings.base_url}"
    )
    console.print(f"server logs: {log_file}", soft_wrap=True)
    server = serve_in_thread(create_app(settings), port=port)
    receiver = WebhookReceiver().start()
    try:
        token = settings.admin_token.get_secret_value()
        return _walk(server.url, token, receiver, console, provider)
    finally:
        receiver.stop()
        server.stop()


def _walk(
    url: str, admin_token: str, receiver: WebhookReceiver, console: Console, provider: str
) -> dict[str, Any]:
    admin = FtqClient(url, admin_token)
    team = admin.create_team(f"demo-{int(time.time())}")
    console.print(f"created team {team['id']} (key {team['api_key']['prefix']}…)")
    client = FtqClient(url, team["api_key"]["key"])
    endpoint = client.request(
        "POST",
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["job.succeeded", "job.failed", "job.cancelled"]},
    )
    receiver.secrets.append(endpoint["secret"])
    console.print(f"webhook endpoint {endpoint['id']} -> {receiver.url}")
    model = DEMO_MODELS[provider]
    dataset = _upload(client, console, model)
    job = client.request(
        "POST",
        "/v1/jobs",
        json={
            "model": model,
            "provider": provider,
            "training_dataset": dataset["id"],
            "suffix": "gauge",
            "validation_split": HELD_OUT,
            "eval": {"grader": EVAL_GRADER, "dataset": None, "checkpoints": True},
            # The emulator draws an overfitting curve: the diagnosis says so and an earlier
            # checkpoint scores best (a real provider ignores this metadata).
            "metadata": {"emulator_curve": "overfit"},
        },
    )
    console.print(f"job {job['id']} queued on {provider} ({model})")
    final = client.wait_job(
        job["id"],
        on_change=lambda j: console.print(
            f"  status {j['status']:<10} provider {j.get('provider_status') or '-'}"
        ),
    )
    hook = receiver.wait_for(f"job.{final['status']}")
    events = client.list_all(f"/v1/jobs/{job['id']}/events")
    _print_summary(console, final, hook, events)
    checkpoints = client.list_all(f"/v1/jobs/{job['id']}/checkpoints")
    for checkpoint in checkpoints:
        console.print(
            f"checkpoint at step {checkpoint['step_number']}: "
            f"{checkpoint['fine_tuned_model_checkpoint']}"
        )
    show_diagnosis(console, final)
    evaluation = _eval(client, final, console)
    final = client.request("GET", f"/v1/jobs/{job['id']}")  # best_checkpoint, once scored
    if final.get("best_checkpoint"):
        console.print(checkpoint_table(evaluation, final, checkpoints))
        best = final["best_checkpoint"]
        console.print(
            f"best checkpoint [bold]{best['model']}[/] at step {best['step']} "
            f"(score {best['score']:.3f}): it answers /v1/chat/completions like the final model"
        )
    sweep = run_sweep(client, console, final, EVAL_GRADER)
    return {
        "sweep": sweep,
        "team": team["id"],
        "dataset": dataset,
        "job": final,
        "checkpoints": checkpoints,
        "eval": evaluation,
        "webhook": {
            "id": hook.headers.get("webhook-id"),
            "verified": hook.verified,
            "event": hook.event,
        },
    }


def _upload(client: FtqClient, console: Console, model: str) -> dict[str, Any]:
    source = resources.files("ftq.services.cli.demo").joinpath(DEMO_DATASET)
    with resources.as_file(source) as path:
        dataset = progress.upload_and_validate(
            client, console, Path(path), 120.0, name=DEMO_DATASET, model=model
        )
    console.print(
        f"uploaded {dataset['id']} ({dataset['bytes']} bytes, sha256 "
        f"{dataset['sha256'][:12]}…) and validated"
    )
    report = dataset.get("report") or {}
    console.print(
        f"dataset {dataset['status']}: {report.get('n_examples')} examples, "
        f"{report.get('billing_tokens_per_epoch')} billing tokens per epoch, "
        f"auto epochs {report.get('auto_n_epochs')}, estimated cost "
        f"${report.get('estimated_cost_usd')}"
    )
    if report.get("token_count_source"):
        console.print(f"token counts: {report['token_count_source']}")
    show_quality(console, dataset)
    return dataset


def _print_summary(
    console: Console, job: dict[str, Any], hook: Any, events: list[dict[str, Any]]
) -> None:
    metrics = [e for e in events if e["type"] == "metrics"]
    console.print(
        f"job {job['id']} {job['status']}: fine-tuned model "
        f"[bold]{job.get('fine_tuned_model')}[/], {len(events)} events "
        f"({len(metrics)} metric steps)"
    )
    mark = "[green]verified[/]" if hook.verified else "[red]NOT verified[/]"
    console.print(
        f"webhook {hook.event['type']} id {hook.headers.get('webhook-id')} signature {mark}"
    )
    data = hook.event.get("data") or {}
    console.print(
        f"  payload {hook.event['type']}: job {data.get('id')} {data.get('status')}, "
        f"fine-tuned model {data.get('fine_tuned_model')} (the job object)"
    )


def _eval(client: FtqClient, job: dict[str, Any], console: Console) -> dict[str, Any]:
    """Wait for the job's eval (base vs fine-tuned on the held-out split) and print the table."""
    from ftq.services.cli.team.render import eval_table

    evaluation = progress.wait_eval(client, console, job, timeout=180)
    if len(evaluation.get("models") or []) == 2:  # with checkpoints: checkpoint_table, later
        console.print(eval_table(evaluation))
    console.print(
        f"eval {evaluation.get('status')}: {EVAL_GRADER} on the {HELD_OUT:.0%} held out of "
        "training. The emulator is a test double, not training: its fine-tuned model answers "
        "with the reply taught for the most similar training prompt, its base model with a "
        "fixed sentence."
    )
    return evaluation
