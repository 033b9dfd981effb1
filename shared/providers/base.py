"""The provider interface every fine-tuning backend implements, and its error classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

METADATA_KEY = "ftq_job_id"
TERMINAL_PROVIDER_STATUSES = {"succeeded", "failed", "cancelled"}


class ProviderError(Exception):
    """Base of provider failures, classified by what the caller should do."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class ProviderRetryable(ProviderError):
    """Rate limits, 5xx, timeouts, connection errors: try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    """The provider refused the request as invalid (400/404/422): fail the job."""


class ProviderUnavailable(ProviderError):
    """The provider will not run fine-tuning for us (403 on create): fail, never retry."""


@dataclass(frozen=True)
class JobSpec:
    """What ftq asks a provider to run."""

    ftq_job_id: str
    model: str
    training_file: str
    validation_file: str | None = None
    method: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderJob:
    """The provider's view of a job, reduced to what ftq mirrors."""

    id: str
    status: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    result_files: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderEvent:
    """One provider event."""

    id: str
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class ChatResult:
    """One chat completion's text and token usage."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Provider(Protocol):
    """Upload, create, follow and cancel fine-tuning jobs at one backend."""

    name: str

    def upload_file(self, path: Path, filename: str) -> str:
        """Upload a training file and return the provider's file id."""
        ...

    def file_exists(self, file_id: str) -> bool:
        """Whether a previously uploaded file is still there."""
        ...

    def find_job(self, ftq_job_id: str) -> ProviderJob | None:
        """The provider job tagged with our id, if one was already created."""
        ...

    def create_job(self, spec: JobSpec) -> ProviderJob:
        """Create a fine-tuning job tagged with our id in its metadata."""
        ...

    def get_job(self, provider_job_id: str) -> ProviderJob:
        """The current state of a job."""
        ...

    def events_after(self, provider_job_id: str, cursor: str | None) -> list[ProviderEvent]:
        """Events newer than the cursor event, oldest first."""
        ...

    def cancel_job(self, provider_job_id: str) -> ProviderJob:
        """Ask the provider to cancel a job."""
        ...

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """One chat completion (evals call this for base and fine-tuned models)."""
        ...
