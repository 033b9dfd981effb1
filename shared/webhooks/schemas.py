"""Webhook endpoint and delivery API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "dataset.ready",
    "dataset.invalid",
    "job.submitted",
    "job.running",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "eval.completed",
    "eval.regressed",
    "sweep.completed",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]


class WebhookEndpointCreate(BaseModel):
    """A new endpoint; an empty `events` list subscribes to every event type."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[EventType] = Field(default_factory=list)
    description: str | None = Field(default=None, max_length=500)
    disabled: bool = False


class WebhookEndpointUpdate(BaseModel):
    """A partial update of an endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[EventType] | None = None
    description: str | None = Field(default=None, max_length=500)
    disabled: bool | None = None


class WebhookEndpoint(BaseModel):
    """An endpoint as read back (never with its secret)."""

    model_config = ConfigDict(from_attributes=True)

    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    events: list[str]
    description: str | None
    disabled: bool
    disabled_reason: str | None
    created_at: datetime


class WebhookEndpointWithSecret(WebhookEndpoint):
    """Returned at creation and rotation only."""

    secret: str


DeliveryStatus = Literal["pending", "succeeded", "failed"]


class WebhookAttempt(BaseModel):
    """One HTTP attempt: what came back (or the network error) and how long it took."""

    model_config = ConfigDict(from_attributes=True)

    attempt: int
    status_code: int | None
    duration_ms: float
    error: str | None
    response_snippet: str | None
    created_at: datetime


class WebhookDelivery(BaseModel):
    """One event to one destination, with its retry state and attempt log."""

    model_config = ConfigDict(from_attributes=True)

    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    event_id: str
    event_type: str
    destination: Literal["endpoint", "job_url"]
    endpoint_id: str | None
    job_id: str | None
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[WebhookAttempt] = Field(default_factory=list)
