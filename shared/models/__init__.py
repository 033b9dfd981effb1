"""ORM models, one file per table."""

from shared.models.api_key import ApiKey
from shared.models.base import Base
from shared.models.dataset import Dataset
from shared.models.eval import Eval
from shared.models.eval_item import EvalItem
from shared.models.eval_output import EvalOutput
from shared.models.idempotency_key import IdempotencyKey
from shared.models.job import Job
from shared.models.job_checkpoint import JobCheckpoint
from shared.models.job_event import JobEvent
from shared.models.job_metric import JobMetric
from shared.models.local_checkpoint import LocalCheckpoint
from shared.models.local_run import LocalRun
from shared.models.local_run_event import LocalRunEvent
from shared.models.outbox import OutboxMessage
from shared.models.provider_capacity import ProviderCapacity
from shared.models.provider_sweep import ProviderSweep
from shared.models.task_attempt import TaskAttempt
from shared.models.team import Team
from shared.models.webhook_attempt import WebhookAttempt
from shared.models.webhook_delivery import WebhookDelivery
from shared.models.webhook_endpoint import WebhookEndpoint

__all__ = [
    "ApiKey",
    "Base",
    "Dataset",
    "Eval",
    "EvalItem",
    "EvalOutput",
    "IdempotencyKey",
    "Job",
    "JobCheckpoint",
    "JobEvent",
    "JobMetric",
    "LocalCheckpoint",
    "LocalRun",
    "LocalRunEvent",
    "OutboxMessage",
    "ProviderCapacity",
    "ProviderSweep",
    "TaskAttempt",
    "Team",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
