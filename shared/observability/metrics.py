"""Prometheus metrics, recorded from the API, the worker and the providers."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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


def record_provider_call(provider: str, operation: str, outcome: str) -> None:
    """Count one provider call; outcome is "ok", an HTTP status code, or "connection_error"."""
    PROVIDER_CALLS.labels(provider, operation, outcome).inc()


def record_webhook_attempt(outcome: str, seconds: float) -> None:
    """Count one webhook attempt; outcome is "success", an HTTP status code, or an error name."""
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_LATENCY.observe(seconds)


def record_validation(size_bytes: int, seconds: float) -> None:
    """Count one dataset validation's bytes and duration."""
    VALIDATED_BYTES.inc(size_bytes)
    VALIDATION_SECONDS.inc(seconds)
