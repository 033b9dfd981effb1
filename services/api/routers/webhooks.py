"""Webhook endpoints and the delivery log."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from ftq.services.api.deps import AfterQuery, LimitQuery, SessionDep, TeamDep
from ftq.services.api.idempotency import IdempotencyDep
from ftq.services.api.uow import commit
from ftq.shared.models import WebhookDelivery as DeliveryRow
from ftq.shared.pagination import Page
from ftq.shared.webhooks import service
from ftq.shared.webhooks.schemas import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])


def _deliveries(session: Session, rows: list[DeliveryRow]) -> list[WebhookDelivery]:
    log = service.attempt_log(session, rows)
    return [
        WebhookDelivery.model_validate(row).model_copy(
            update={"attempt_log": [WebhookAttempt.model_validate(a) for a in log[row.id]]}
        )
        for row in rows
    ]


def _with_secret(endpoint: object, secret: str) -> WebhookEndpointWithSecret:
    base = WebhookEndpoint.model_validate(endpoint).model_dump()
    return WebhookEndpointWithSecret(**base, secret=secret)


@router.post(
    "/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointWithSecret,
)
def create_endpoint(
    data: WebhookEndpointCreate, session: SessionDep, team: TeamDep, idempotency: IdempotencyDep
) -> WebhookEndpointWithSecret | Response:
    """Register an endpoint; its `whsec_` secret is shown only now."""
    if (replay := idempotency.begin(session, data)) is not None:
        return replay
    endpoint, secret = service.create_endpoint(session, team, data)
    created = _with_secret(endpoint, secret)
    idempotency.save(session, status.HTTP_201_CREATED, created)
    commit(session)
    return created


@router.get("/webhook-endpoints", response_model=Page[WebhookEndpoint])
def list_endpoints(
    session: SessionDep, team: TeamDep, limit: LimitQuery = 20, after: AfterQuery = None
) -> Page[WebhookEndpoint]:
    """The team's endpoints."""
    rows, more = service.list_endpoints(session, team, limit=limit, after=after)
    return Page(data=[WebhookEndpoint.model_validate(r) for r in rows], has_more=more)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpoint)
def read_endpoint(endpoint_id: str, session: SessionDep, team: TeamDep) -> WebhookEndpoint:
    """One endpoint (without its secret)."""
    return WebhookEndpoint.model_validate(service.get_endpoint(session, team, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpoint)
def update_endpoint(
    endpoint_id: str, data: WebhookEndpointUpdate, session: SessionDep, team: TeamDep
) -> WebhookEndpoint:
    """Change URL, subscriptions, description or disabled."""
    endpoint = service.update_endpoint(session, team, endpoint_id, data)
    commit(session)
    return WebhookEndpoint.model_validate(endpoint)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(endpoint_id: str, session: SessionDep, team: TeamDep) -> None:
    """Remove an endpoint."""
    service.delete_endpoint(session, team, endpoint_id)
    commit(session)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=WebhookEndpointWithSecret
)
def rotate_secret(
    endpoint_id: str, session: SessionDep, team: TeamDep
) -> WebhookEndpointWithSecret:
    """A new secret; deliveries carry both signatures for 24 hours."""
    endpoint, secret = service.rotate_secret(session, team, endpoint_id)
    commit(session)
    return _with_secret(endpoint, secret)


@router.get("/webhook-deliveries", response_model=Page[WebhookDelivery])
def list_deliveries(
    session: SessionDep,
    team: TeamDep,
    limit: LimitQuery = 20,
    after: AfterQuery = None,
    job: str | None = None,
    endpoint: str | None = None,
    status: DeliveryStatus | None = None,
) -> Page[WebhookDelivery]:
    """The delivery log with every attempt, filtered by job, endpoint or status."""
    rows, more = service.list_deliveries(
        session, team, job_id=job, endpoint_id=endpoint, status=status, limit=limit, after=after
    )
    return Page(data=_deliveries(session, rows), has_more=more)


@router.get("/webhook-deliveries/{delivery_id}", response_model=WebhookDelivery)
def read_delivery(delivery_id: str, session: SessionDep, team: TeamDep) -> WebhookDelivery:
    """One delivery with its attempts."""
    return _deliveries(session, [service.get_delivery(session, team, delivery_id)])[0]


@router.post("/webhook-deliveries/{delivery_id}/redeliver", response_model=WebhookDelivery)
def redeliver(delivery_id: str, session: SessionDep, team: TeamDep) -> WebhookDelivery:
    """Send a delivery again now with the same webhook-id (replay)."""
    delivery = service.redeliver(session, team, delivery_id)
    commit(session)
    return _deliveries(session, [delivery])[0]
