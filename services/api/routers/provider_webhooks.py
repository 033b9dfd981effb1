"""OpenAI's own fine-tuning webhooks: verify, then sync the job now (polling stays the fallback).

OpenAI signs with Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and
the `whsec_…` secret shown when the endpoint is created in its dashboard; ftq reads it from
`FTQ_OPENAI_WEBHOOK_SECRET`. A bad or stale signature is a 401, an unreadable body a 400. Events
about jobs ftq does not know are acknowledged and ignored, so OpenAI does not retry them.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from ftq.services.api.deps import SessionDep
from ftq.services.api.uow import commit
from ftq.shared.errors import BadRequest, ServiceUnavailable, Unauthorized
from ftq.shared.jobs import service as jobs
from ftq.shared.outbox import enqueue
from ftq.shared.settings import get_settings
from ftq.shared.webhooks.signing import InvalidSignature, verify

router = APIRouter(prefix="/v1/provider-webhooks", tags=["provider webhooks"])

OPENAI_PROVIDERS = ("openai", "azure-openai")
EVENT_PREFIX = "fine_tuning.job."


@router.post("/openai")
async def openai_webhook(request: Request, session: SessionDep) -> dict[str, Any]:
    """A signed `fine_tuning.job.*` event: sync that job now."""
    secret = get_settings().openai_webhook_secret
    if secret is None:
        raise ServiceUnavailable(
            "OpenAI webhooks are not configured here (FTQ_OPENAI_WEBHOOK_SECRET)",
            code="provider_webhooks_not_configured",
        )
    body = await request.body()
    try:
        verify(secret.get_secret_value(), body, request.headers)
    except InvalidSignature as exc:
        raise Unauthorized(f"invalid webhook signature: {exc}", code="invalid_signature") from exc
    except ValueError as exc:  # a malformed configured secret
        raise ServiceUnavailable(f"FTQ_OPENAI_WEBHOOK_SECRET is unusable: {exc}") from exc
    event = _parse(body)
    event_type = event["type"]
    if not event_type.startswith(EVENT_PREFIX):
        return {"received": True, "action": "ignored"}
    provider_job_id = event["data"]["id"]
    job_id = jobs.job_for_provider_job(session, OPENAI_PROVIDERS, provider_job_id)
    if job_id is None:
        return {"received": True, "action": "ignored"}
    enqueue(session, "jobs.poll", job_id)
    commit(session)
    return {"received": True, "action": "sync", "job": job_id}


def _parse(body: bytes) -> dict[str, Any]:
    """The event, or a 400 naming what is wrong with it."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise BadRequest("webhook body is not JSON", param="body") from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise BadRequest("webhook body has no event type", param="type")
    data = event.get("data")
    if event["type"].startswith(EVENT_PREFIX) and not (
        isinstance(data, dict) and isinstance(data.get("id"), str)
    ):
        raise BadRequest("fine_tuning.job event without data.id", param="data.id")
    return event
