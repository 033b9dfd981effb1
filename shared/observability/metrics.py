"""Prometheus metrics, recorded from the API, the worker and the providers.

With several processes per pod (uvicorn --workers, Celery prefork) set PROMETHEUS_MULTIPROC_DIR
to an empty folder shared by them: every scrape then sums the processes' samples.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

PROVIDER_CALLS = Counter(
    "ftq_provider_calls_total",
    "Calls to fine-tuning providers by operation and outcome (ok, an HTTP status, or error)",
    ["provider", "operation", "outcome"],
)
WEBHOOK_ATTEMPTS = Counter(
    "ftq_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"]
)
WEBHOOK_LATENCY = Histogram(
    "ftq_webhook_attempt_seconds", "Duration of one webhook delivery attempt"
)
VALIDATED_BYTES = Counter("ftq_validation_bytes_total", "Dataset bytes validated")
VALIDATION_SECONDS = Counter("ftq_validation_seconds_total", "Time spent validating datasets")
VALIDATED_DATASETS = Counter(
    "ftq_validation_datasets_total", "Datasets validated by result", ["status"]
)
HTTP_LATENCY = Histogram(
    "ftq_http_request_duration_seconds",
    "API request latency by route template, method and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CRASH_LOOPS = Counter(
    "ftq_task_crash_loops_total",
    "Task messages refused after too many deliveries that never finished",
    ["task"],
)


def record_provider_call(provider: str, operation: str, outcome: str) -> None:
    """Count one provider call; outcome is "ok", an HTTP status code, or "connection_error"."""
    PROVIDER_CALLS.labels(provider, operation, outcome).inc()


def record_webhook_attempt(outcome: str, seconds: float) -> None:
    """Count one webhook attempt; outcome is "success", an HTTP status code, or an error name."""
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_LATENCY.observe(seconds)


def record_validation(size_bytes: int, seconds: float, status: str = "ready") -> None:
    """Count one dataset validation's bytes, duration and result."""
    VALIDATED_BYTES.inc(size_bytes)
    VALIDATION_SECONDS.inc(seconds)
    VALIDATED_DATASETS.labels(status).inc()


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Observe one API request's latency."""
    HTTP_LATENCY.labels(method, route, str(status)).observe(seconds)


def record_crash_loop(task: str) -> None:
    """Count one refused poison message."""
    CRASH_LOOPS.labels(task).inc()


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every process's in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry
