"""The OpenAI-compatible provider: OpenAI, Azure OpenAI and the emulator, via the official SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
from openai import OpenAI

from shared.providers.base import (
    METADATA_KEY,
    ChatResult,
    JobSpec,
    ProviderEvent,
    ProviderJob,
    ProviderRejected,
    ProviderRetryable,
    ProviderUnavailable,
)

EVENT_PAGE = 100


class OpenAIProvider:
    """Every call goes through one SDK client; SDK errors become ftq's provider errors."""

    def __init__(self, name: str, client: OpenAI) -> None:
        self.name = name
        self.client = client

    def upload_file(self, path: Path, filename: str) -> str:
        """Upload a JSONL file for fine-tuning."""
        with path.open("rb") as handle:
            created = _call(self.client.files.create, file=(filename, handle), purpose="fine-tune")
        return str(created.id)

    def file_exists(self, file_id: str) -> bool:
        """Whether the file can still be retrieved."""
        try:
            self.client.files.retrieve(file_id)
        except openai.NotFoundError:
            return False
        except openai.APIError as exc:
            raise _classify(exc) from exc
        return True

    def find_job(self, ftq_job_id: str) -> ProviderJob | None:
        """Look our job up by its metadata tag (the SDK sends no idempotency key)."""
        page = _call(
            self.client.fine_tuning.jobs.list, metadata={METADATA_KEY: ftq_job_id}, limit=10
        )
        for job in page.data:
            if (job.metadata or {}).get(METADATA_KEY) == ftq_job_id:
                return _to_job(job)
        return None

    def create_job(self, spec: JobSpec) -> ProviderJob:
        """Create the provider job, tagged with our id."""
        body: dict[str, Any] = {
            "model": spec.model,
            "training_file": spec.training_file,
            "metadata": {**spec.metadata, METADATA_KEY: spec.ftq_job_id},
        }
        optional = {
            "validation_file": spec.validation_file,
            "suffix": spec.suffix,
            "seed": spec.seed,
            "method": spec.method or None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return _to_job(_call(self.client.fine_tuning.jobs.create, **body))

    def get_job(self, provider_job_id: str) -> ProviderJob:
        """Retrieve one job."""
        return _to_job(_call(self.client.fine_tuning.jobs.retrieve, provider_job_id))

    def events_after(self, provider_job_id: str, cursor: str | None) -> list[ProviderEvent]:
        """Walk the newest-first event list back to the cursor; return the new ones oldest first."""
        fresh: list[ProviderEvent] = []
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": EVENT_PAGE}
            if after:
                kwargs["after"] = after
            page = _call(self.client.fine_tuning.jobs.list_events, provider_job_id, **kwargs)
            for event in page.data:
                if event.id == cursor:
                    return list(reversed(fresh))
                fresh.append(_to_event(event))
            if not page.has_more or not page.data:
                return list(reversed(fresh))
            after = page.data[-1].id

    def cancel_job(self, provider_job_id: str) -> ProviderJob:
        """Cancel a job at the provider."""
        return _to_job(_call(self.client.fine_tuning.jobs.cancel, provider_job_id))

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """One chat completion through the SDK."""
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        completion = _call(self.client.chat.completions.create, **kwargs)
        usage = completion.usage
        return ChatResult(
            text=completion.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )


def _call(func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except openai.APIError as exc:
        raise _classify(exc) from exc


def _classify(exc: openai.APIError) -> Exception:
    if isinstance(exc, openai.APIConnectionError):
        return ProviderRetryable(f"provider unreachable: {type(exc).__name__}")
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    message = _message(exc)
    if status == 403:
        return ProviderUnavailable(message, code=code or "permission_denied", status=status)
    if status in (408, 409, 429) or (status is not None and status >= 500):
        return ProviderRetryable(message, code=code, status=status, retry_after=_retry_after(exc))
    return ProviderRejected(message, code=code, status=status)


def _message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.message)


def _retry_after(exc: openai.APIError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _to_job(job: Any) -> ProviderJob:
    error = getattr(job, "error", None)
    return ProviderJob(
        id=job.id,
        status=job.status,
        fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        error_code=getattr(error, "code", None) if error else None,
        error_message=getattr(error, "message", None) if error else None,
        result_files=tuple(job.result_files or ()),
        metadata=dict(job.metadata or {}),
    )


def _to_event(event: Any) -> ProviderEvent:
    data = event.data if isinstance(event.data, dict) else None
    return ProviderEvent(
        id=event.id,
        created_at=int(event.created_at),
        level=str(event.level),
        message=event.message,
        type=str(event.type or "message"),
        data=data,
    )
