"""The OpenAI-compatible provider: OpenAI, Azure OpenAI and the emulator, via the official SDK.

The client is built with `max_retries=0`: retries belong to ftq (Celery retries honouring
`retry-after`, the sweep's back-off), because the SDK re-POSTs creates without an idempotency
key. Every call is counted in `ftq_provider_calls_total{provider, operation, outcome}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx2
import openai
from openai import OpenAI

# The SDK's own switch for "hand me the unread HTTP response" (what with_streaming_response sets).
from openai._constants import RAW_RESPONSE_HEADER

from ftq.shared.observability.metrics import record_provider_call
from ftq.shared.providers.base import (
    METADATA_KEY,
    ChatResult,
    JobPage,
    JobSpec,
    ProviderBase,
    ProviderCheckpoint,
    ProviderEvent,
    ProviderJob,
    ProviderRejected,
    ProviderRetryable,
    classify_status,
)

EVENT_PAGE = 100
JOB_PAGE = 100
FILE_PAGE = 100
FILE_PAGES_SEARCHED = 3  # an upload lost to a crash is among the newest 300 files
LIMITS_PATH = "/fine_tuning/model_limits"


class OpenAIProvider(ProviderBase):
    """Every call goes through one SDK client; SDK errors become ftq's provider errors."""

    lists_jobs = True

    def __init__(
        self, name: str, client: OpenAI, *, deployments: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.client = client
        # Azure serves chat per deployment: the SDK puts `model` in the path, so map it.
        self.deployments = dict(deployments or {})

    def _call(self, operation: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the SDK, count the call, and classify its failure."""
        try:
            result = func(*args, **kwargs)
        except openai.APIConnectionError as exc:
            record_provider_call(self.name, operation, "connection_error")
            raise classify(exc) from exc
        except openai.APIStatusError as exc:
            record_provider_call(self.name, operation, str(exc.status_code))
            raise classify(exc) from exc
        except openai.APIError as exc:
            record_provider_call(self.name, operation, "error")
            raise classify(exc) from exc
        record_provider_call(self.name, operation, "ok")
        return result

    # -- account limits -------------------------------------------------------------------

    def closed_for_account(self, model: str, today: date) -> str | None:
        """What `GET /v1/fine_tuning/model_limits` says of `model`, where the account exposes it.

        OpenAI refused new jobs to some organisations months before the 2027-01-06 wind-down
        (never fine-tuned: since 2026-05-07; no fine-tuned inference in 60 days: since
        2026-07-02); the catalog cannot know which, the account's own limits can.
        """
        limits = self._model_limits()
        entry = limits.get(model) if limits is not None else None
        if entry is None:
            return None
        until = _date(entry.get("new_jobs_until"))
        if entry.get("new_jobs") is False or (until is not None and today >= until):
            since = f" since {until.isoformat()}" if until is not None else ""
            return f"this account takes no new fine-tuning jobs for {model}{since} (model_limits)"
        return None

    def _model_limits(self) -> dict[str, dict[str, Any]] | None:
        """The account's limits by model; None where the route is absent.

        Read on every submit, not cached: one small GET beside the uploads and the create, and
        an account closed a minute ago is known at once.
        """
        try:
            body = self._call("model_limits", self.client.get, LIMITS_PATH, cast_to=object)
        except ProviderRejected:  # 404: this account (or this provider) does not expose it
            return None
        return _limits_by_model(body)

    # -- files ----------------------------------------------------------------------------

    def upload_file(self, path: Path, filename: str) -> str:
        """Upload a JSONL file for fine-tuning."""
        with path.open("rb") as handle:
            created = self._call(
                "upload_file",
                self.client.files.create,
                file=(filename, handle),
                purpose="fine-tune",
            )
        return str(created.id)

    def find_file(self, filename: str, size: int) -> str | None:
        """The newest fine-tune file with this name and size, among the newest few hundred."""
        after: str | None = None
        for _ in range(FILE_PAGES_SEARCHED):
            kwargs: dict[str, Any] = {"purpose": "fine-tune", "limit": FILE_PAGE, "order": "desc"}
            if after:
                kwargs["after"] = after
            page = self._call("list_files", self.client.files.list, **kwargs)
            for item in page.data:
                if item.filename == filename and int(item.bytes) == size:
                    return str(item.id)
            if not page.has_more or not page.data:
                return None
            after = page.data[-1].id
        return None

    def check_credential(self) -> None:
        """List one fine-tune file: the cheapest call that needs the key fine-tuning needs."""
        self._call("check_credential", self.client.files.list, purpose="fine-tune", limit=1)

    def file_exists(self, file_id: str) -> bool:
        """Whether the file can still be retrieved."""
        try:
            self._call("retrieve_file", self.client.files.retrieve, file_id)
        except ProviderRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def file_content(self, file_id: str) -> bytes:
        """A file's raw bytes."""
        response = self._call("file_content", self.client.files.content, file_id)
        return bytes(response.content)

    # -- jobs -----------------------------------------------------------------------------

    def find_job(self, ftq_job_id: str) -> ProviderJob | None:
        """Look our job up by its metadata tag (the SDK sends no idempotency key)."""
        page = self._call(
            "find_job",
            self.client.fine_tuning.jobs.list,
            metadata={METADATA_KEY: ftq_job_id},
            limit=10,
        )
        for job in page.data:
            if (job.metadata or {}).get(METADATA_KEY) == ftq_job_id:
                return to_job(job)
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
        return to_job(self._call("create_job", self.client.fine_tuning.jobs.create, **body))

    def get_job(self, provider_job_id: str) -> ProviderJob:
        """Retrieve one job."""
        return to_job(
            self._call("retrieve_job", self.client.fine_tuning.jobs.retrieve, provider_job_id)
        )

    def list_jobs(self, after: str | None = None, limit: int = JOB_PAGE) -> JobPage:
        """One page of the organisation's jobs, newest first."""
        kwargs: dict[str, Any] = {"limit": limit}
        if after:
            kwargs["after"] = after
        page = self._call("list_jobs", self.client.fine_tuning.jobs.list, **kwargs)
        return JobPage(jobs=[to_job(job) for job in page.data], has_more=bool(page.has_more))

    def events_after(self, provider_job_id: str, cursor: str | None) -> list[ProviderEvent]:
        """Walk the newest-first event list back to the cursor; return the new ones oldest first."""
        fresh: list[ProviderEvent] = []
        events = self.client.fine_tuning.jobs.list_events
        for event in self._every("list_events", events, provider_job_id):
            if event.id == cursor:
                break
            fresh.append(to_event(event))
        return list(reversed(fresh))

    def list_checkpoints(self, provider_job_id: str) -> list[ProviderCheckpoint]:
        """Every checkpoint of a job (OpenAI keeps the last few), oldest first."""
        listed = self.client.fine_tuning.jobs.checkpoints.list
        found = [to_checkpoint(c) for c in self._every("list_checkpoints", listed, provider_job_id)]
        return sorted(found, key=lambda c: c.step_number)

    def _every(self, operation: str, method: Callable[..., Any], *args: Any) -> Iterator[Any]:
        """Every item of a cursor-paged list, page by page (stop early by not asking for more)."""
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": EVENT_PAGE}
            if after:
                kwargs["after"] = after
            page = self._call(operation, method, *args, **kwargs)
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    def cancel_job(self, provider_job_id: str) -> ProviderJob:
        """Cancel a job at the provider."""
        return to_job(
            self._call("cancel_job", self.client.fine_tuning.jobs.cancel, provider_job_id)
        )

    def pause_job(self, provider_job_id: str) -> ProviderJob:
        """Pause a running job."""
        return to_job(self._call("pause_job", self.client.fine_tuning.jobs.pause, provider_job_id))

    def resume_job(self, provider_job_id: str) -> ProviderJob:
        """Resume a paused job."""
        return to_job(
            self._call("resume_job", self.client.fine_tuning.jobs.resume, provider_job_id)
        )

    def delete_model(self, model: str) -> bool:
        """Delete a fine-tuned model (or checkpoint) at the provider."""
        return bool(self._call("delete_model", self.client.models.delete, model).deleted)

    # -- chat -----------------------------------------------------------------------------

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """One chat completion through the SDK (on Azure, `model` names the deployment)."""
        kwargs: dict[str, Any] = {
            "model": self.deployments.get(model, model),
            "messages": messages,
            "temperature": temperature,
        }
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        completion = self._call("chat_completion", self.client.chat.completions.create, **kwargs)
        usage = completion.usage
        return ChatResult(
            text=completion.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST the caller's body as-is (unknown fields too) and return the JSON unparsed."""
        response = self._call(
            "chat_completion",
            self.client.post,
            "/chat/completions",
            body=self._addressed(body),
            cast_to=httpx2.Response,
        )
        answer: dict[str, Any] = response.json()
        return answer

    def chat_completion_stream(self, body: dict[str, Any]) -> Iterator[bytes]:
        """Open the stream now (errors raise here), then relay its bytes as they arrive."""
        response = self._call(
            "chat_completion_stream",
            self.client.post,
            "/chat/completions",
            body=self._addressed(body),
            cast_to=httpx2.Response,
            options={"headers": {RAW_RESPONSE_HEADER: "stream"}},
        )
        return self._relayed(response)

    def _addressed(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with `model` as this provider names it (an Azure deployment)."""
        model = body.get("model")
        if isinstance(model, str) and model in self.deployments:
            return {**body, "model": self.deployments[model]}
        return body

    def _relayed(self, response: httpx2.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx2.HTTPError as exc:
            record_provider_call(self.name, "chat_completion_stream", "broken_stream")
            raise ProviderRetryable(f"provider stream broke: {type(exc).__name__}") from exc
        finally:
            response.close()


def _limits_by_model(body: Any) -> dict[str, dict[str, Any]] | None:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    return {
        str(item["model"]): item
        for item in body["data"]
        if isinstance(item, dict) and isinstance(item.get("model"), str)
    }


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def classify(exc: openai.APIError) -> Exception:
    """Turn an SDK error into ftq's retry / reject / unavailable classes."""
    if isinstance(exc, openai.APIConnectionError):
        return ProviderRetryable(f"provider unreachable: {type(exc).__name__}")
    response = getattr(exc, "response", None)
    headers = response.headers if response is not None else None
    status = getattr(exc, "status_code", None)
    return classify_status(status, _message(exc), getattr(exc, "code", None), headers)


def _message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner = body["error"].get("message")
        if isinstance(inner, str):
            return inner
    return str(exc.message)


def to_job(job: Any) -> ProviderJob:
    """The SDK's job object, reduced (a non-failed job's `error` is an object of nulls)."""
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
        created_at=getattr(job, "created_at", None),
        finished_at=getattr(job, "finished_at", None),
    )


def to_event(event: Any) -> ProviderEvent:
    """The SDK's event object, reduced."""
    data = event.data if isinstance(event.data, dict) else None
    return ProviderEvent(
        id=event.id,
        created_at=int(event.created_at),
        level=str(event.level),
        message=event.message,
        type=str(event.type or "message"),
        data=data,
    )


def to_checkpoint(item: Any) -> ProviderCheckpoint:
    """The SDK's checkpoint object, reduced."""
    metrics = item.metrics.model_dump(exclude_none=True) if item.metrics is not None else {}
    return ProviderCheckpoint(
        id=item.id,
        step_number=int(item.step_number),
        fine_tuned_model_checkpoint=item.fine_tuned_model_checkpoint,
        metrics=metrics,
        created_at=int(item.created_at),
    )
