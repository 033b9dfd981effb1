"""Evals of local models run on the GPU workers, the only ones with torch."""

from __future__ import annotations

from ftq.services.worker.celery_app import celery_app
from ftq.shared.evals.service import run_task
from ftq.shared.models import Eval


def queue_of(task: str) -> str:
    """The queue Celery's router sends a task to."""
    return str(celery_app.amqp.router.route({}, task)["queue"].name)


def test_an_eval_of_a_local_model_goes_to_the_gpu_queue() -> None:
    row = Eval(models=["smollm2-135m", "local:smollm2-135m:demo:abc123"], provider="local")
    assert run_task(row) == "evals.run_local"
    assert queue_of(run_task(row)) == "gpu"


def test_an_eval_of_provider_models_stays_on_the_evals_queue() -> None:
    row = Eval(models=["gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini:acme:x:1"], provider="openai")
    assert run_task(row) == "evals.run"
    assert queue_of(run_task(row)) == "evals"
