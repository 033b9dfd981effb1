"""GET /metrics: Prometheus text format; open unless FTQ_METRICS_TOKEN is set."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ftq.services.api.deps import SessionDep
from ftq.shared.errors import Unauthorized
from ftq.shared.observability.collectors import JobsCollector, QueueCollector
from ftq.shared.observability.metrics import process_registry
from ftq.shared.security import constant_time_equals
from ftq.shared.settings import get_settings

router = APIRouter(tags=["health"])


def _check_token(authorization: str | None) -> None:
    token = get_settings().metrics_token
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    if not constant_time_equals(given.strip(), token.get_secret_value()):
        raise Unauthorized("GET /metrics needs 'Authorization: Bearer <FTQ_METRICS_TOKEN>'")


@router.get("/metrics", response_class=Response)
def metrics(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """This process's counters and histograms, plus jobs by status and queue depth read now."""
    from ftq.services.worker.celery_app import QUEUES

    _check_token(authorization)
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(JobsCollector(session))
    scraped.register(QueueCollector(get_settings().broker_url, QUEUES))
    body = generate_latest(process_registry()) + generate_latest(scraped)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
