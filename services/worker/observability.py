"""Worker logs and metrics: JSON logs bound to the task's job id, and a /metrics port."""

from __future__ import annotations

import logging
from contextvars import Token
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_init

from ftq.shared.observability.logging import close_scope, configure_logging, open_scope
from ftq.shared.observability.metrics import process_registry
from ftq.shared.settings import get_settings

log = logging.getLogger(__name__)
ID_FIELDS = {"ftj_": "job_id", "ds_": "dataset_id", "ev_": "eval_id", "whd_": "delivery_id"}
_scopes: dict[str, Token[dict[str, str] | None]] = {}


def fields_from_args(args: Any) -> dict[str, str]:
    """Which object a task works on, from its first argument's id prefix."""
    first = str(args[0]) if args else ""
    for prefix, name in ID_FIELDS.items():
        if first.startswith(prefix):
            return {name: first}
    return {}


def _on_prerun(task_id: str, task: Any, args: Any = None, **_: Any) -> None:
    _scopes[task_id] = open_scope(task=task.name, task_id=task_id, **fields_from_args(args))


def _on_postrun(task_id: str, **_: Any) -> None:
    token = _scopes.pop(task_id, None)
    if token is not None:
        close_scope(token)


def _on_setup_logging(loglevel: Any = None, **_: Any) -> None:
    # Connecting this signal stops Celery from installing its own (plain text) handlers.
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    configure_logging("worker", level=level)


def _on_worker_init(**_: Any) -> None:
    port = get_settings().worker_metrics_port
    if port:
        start_metrics_server(port)


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> None:
    """Serve this worker's (or, in multiprocess mode, every pool process's) metrics."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=process_registry())
    log.info("worker metrics on :%d/metrics", port)


def install(app: Celery) -> None:
    """Connect the signals once (Celery signals are process-wide)."""
    task_prerun.connect(_on_prerun, weak=False)
    task_postrun.connect(_on_postrun, weak=False)
    setup_logging.connect(_on_setup_logging, weak=False)
    worker_init.connect(_on_worker_init, weak=False)
