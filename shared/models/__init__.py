"""ORM models, one file per table."""

from ftq.shared.models.api_key import ApiKey
from ftq.shared.models.base import Base
from ftq.shared.models.dataset import Dataset
from ftq.shared.models.eval import Eval
from ftq.shared.models.eval_item import EvalItem
from ftq.shared.models.eval_output import EvalOutput
from ftq.shared.models.eval_schedule import EvalSchedule
from ftq.shared.models.eval_schedule_run import EvalScheduleRun
from ftq.shared.models.idempotency_key import IdempotencyKey
from ftq.shared.models.job import Job, JobRecord
from ftq.shared.models.job_checkpoint import JobCheckpoint
from ftq.shared.models.job_event import JobEvent
from ftq.shared.models.job_metric import JobMetric
from ftq.shared.models.local_checkpoint import LocalCheckpoint
from ftq.shared.models.local_run import LocalRun
from ftq.shared.models.local_run_event import LocalRunEvent
from ftq.shared.models.outbox import OutboxMessage
from ftq.shared.models.provider_capacity import ProviderCapacity
from ftq.shared.models.provider_credential import ProviderCredential
from ftq.shared.models.provider_sweep import ProviderSweep
from ftq.shared.models.sweep import Sweep
from ftq.shared.models.task_attempt import TaskAttempt
from ftq.shared.models.team import Team
from ftq.shared.models.webhook_attempt import WebhookAttempt
from ftq.shared.models.webhook_delivery import WebhookDelivery
from ftq.shared.models.webhook_endpoint import WebhookEndpoint

__all__ = [
    "ApiKey",
    "Base",
    "Dataset",
    "Eval",
    "EvalItem",
    "EvalOutput",
    "EvalSchedule",
    "EvalScheduleRun",
    "IdempotencyKey",
    "Job",
    "JobCheckpoint",
    "JobEvent",
    "JobMetric",
    "JobRecord",
    "LocalCheckpoint",
    "LocalRun",
    "LocalRunEvent",
    "OutboxMessage",
    "ProviderCapacity",
    "ProviderCredential",
    "ProviderSweep",
    "Sweep",
    "TaskAttempt",
    "Team",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
