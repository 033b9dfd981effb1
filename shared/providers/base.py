"""The provider interface every fine-tuning backend implements, and its error classes.

A provider is built by `ftq.shared.providers.registry.get_provider(name)`. Every method either
returns or raises one of the three `ProviderError` classes below, which tell the caller what to do:
`ProviderRetryable` (429, 5xx, timeouts, connection errors: retry later, honouring
`retry_after`), `ProviderRejected` (400/404/422: the request itself is wrong; fail with the
provider's message) and `ProviderUnavailable` (403: the provider will not do this for us; fail at
once, never retry).

Exactly-once rules the callers rely on:
- `create_job` tags the provider job with our job id in `metadata[METADATA_KEY]`, and `find_job`
  finds it again by that tag, so a submission retried after any crash never creates a twin.
- `upload_file` uploads under a filename derived from our dataset id, and `find_file` finds an
  earlier upload of the same name and size, so a retried upload does not leave a second file.

Optional abilities have defaults in `ProviderBase` (subclass it): a provider that cannot list its
jobs sets `lists_jobs = False` and is followed job by job with `get_job`; one that cannot pause
raises `ProviderRejected` from `pause_job` / `resume_job`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import date
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


RETRY_AFTER_CAP = 1800.0


def classify_status(
    status: int | None, message: str, code: str | None, headers: Any = None
) -> ProviderError:
    """An HTTP error answer as ftq's retry / reject / unavailable classes (any provider)."""
    if status == 403:
        return ProviderUnavailable(message, code=code or "permission_denied", status=status)
    if status in (408, 409, 429) or (status is not None and status >= 500):
        wait = retry_after_seconds(headers)
        return ProviderRetryable(message, code=code, status=status, retry_after=wait)
    return ProviderRejected(message, code=code, status=status)


def retry_after_seconds(headers: Any) -> float | None:
    """`retry-after-ms` or `retry-after` (seconds) of an answer's headers, capped."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return min(max(float(value) * scale, 0.0), RETRY_AFTER_CAP)
        except ValueError:
            continue
    return None


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
    created_at: int | None = None
    finished_at: int | None = None

    @property
    def ftq_job_id(self) -> str | None:
        """Our job id, from the metadata tag."""
        return self.metadata.get(METADATA_KEY)

    @property
    def fingerprint(self) -> str:
        """What a job list shows that changes when the job moves (status, tokens, finish, …).

        A running job's steps do not show here: its events are checked on a back-off schedule.
        """
        parts = (
            self.status,
            self.trained_tokens,
            self.finished_at,
            self.fine_tuned_model,
            self.error_code,
            len(self.result_files),
        )
        return "|".join("" if part is None else str(part) for part in parts)


@dataclass(frozen=True)
class JobPage:
    """One page of the provider's job list, newest first."""

    jobs: list[ProviderJob]
    has_more: bool


@dataclass(frozen=True)
class ProviderCheckpoint:
    """A model snapshot the provider kept at a step."""

    id: str
    step_number: int
    fine_tuned_model_checkpoint: str
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: int | None = None


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
    """Upload, create, follow, pause, resume and cancel fine-tuning jobs at one backend."""

    name: str
    lists_jobs: bool

    def upload_file(self, path: Path, filename: str) -> str:
        """Upload a training file under `filename` and return the provider's file id."""
        ...

    def find_file(self, filename: str, size: int) -> str | None:
        """An earlier upload with this filename and size (the crash-safe twin of an upload)."""
        ...

    def file_exists(self, file_id: str) -> bool:
        """Whether a previously uploaded file is still there."""
        ...

    def file_content(self, file_id: str) -> bytes:
        """A file's bytes (result files: the metrics CSV)."""
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

    def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        """One page of all jobs, newest first; `after` is the last id of the previous page."""
        ...

    def events_after(self, provider_job_id: str, cursor: str | None) -> list[ProviderEvent]:
        """Events newer than the cursor event, oldest first."""
        ...

    def list_checkpoints(self, provider_job_id: str) -> list[ProviderCheckpoint]:
        """A job's checkpoints, oldest first."""
        ...

    def closed_for_account(self, model: str, today: date) -> str | None:
        """Why this account can start no new fine-tuning job for `model` (None: it can)."""
        ...

    def cancel_job(self, provider_job_id: str) -> ProviderJob:
        """Ask the provider to cancel a job."""
        ...

    def pause_job(self, provider_job_id: str) -> ProviderJob:
        """Pause a running job (ProviderRejected where unsupported)."""
        ...

    def resume_job(self, provider_job_id: str) -> ProviderJob:
        """Resume a paused job (ProviderRejected where unsupported)."""
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

    def delete_model(self, model: str) -> bool:
        """Delete a fine-tuned model (ProviderRejected where unsupported)."""
        ...

    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """OpenAI's chat completion body in, the provider's `chat.completion` JSON out, as-is."""
        ...

    def chat_completion_stream(self, body: dict[str, Any]) -> Iterator[bytes]:
        """The provider's raw server-sent events for a `stream: true` body, to `data: [DONE]`."""
        ...


class ProviderBase:
    """Defaults for a provider's optional abilities; subclass it and override what you have."""

    name: str = "provider"
    lists_jobs: bool = False

    def find_file(self, filename: str, size: int) -> str | None:
        """No way to find earlier uploads: a retried upload uploads again."""
        return None

    def check_credential(self) -> None:
        """One cheap call that fails as the others would with a refused key (a team credential)."""
        if self.lists_jobs:
            self.list_jobs(None, 1)

    def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        """Unsupported: the poller follows such a provider's jobs one by one."""
        raise ProviderRejected(f"{self.name} cannot list its jobs", code="unsupported")

    def list_checkpoints(self, provider_job_id: str) -> list[ProviderCheckpoint]:
        """No checkpoints."""
        return []

    def closed_for_account(self, model: str, today: date) -> str | None:
        """Why this account can start no new fine-tuning job for `model` today (None: it can,
        or the provider does not say)."""
        return None

    def file_content(self, file_id: str) -> bytes:
        """No result files."""
        raise ProviderRejected(f"{self.name} keeps no file {file_id}", code="unsupported")

    def pause_job(self, provider_job_id: str) -> ProviderJob:
        """Unsupported."""
        raise ProviderRejected(f"{self.name} cannot pause jobs", code="unsupported")

    def resume_job(self, provider_job_id: str) -> ProviderJob:
        """Unsupported."""
        raise ProviderRejected(f"{self.name} cannot resume jobs", code="unsupported")

    def delete_model(self, model: str) -> bool:
        """Unsupported."""
        raise ProviderRejected(f"{self.name} cannot delete models", code="unsupported")

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """Unsupported."""
        raise ProviderRejected(f"{self.name} serves no chat completions", code="unsupported")

    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A `chat.completion` built from `complete_chat` (only model, messages and limits)."""
        result = self.complete_chat(body["model"], body["messages"], **sampling(body))
        return completion_object(body["model"], result)

    def chat_completion_stream(self, body: dict[str, Any]) -> Iterator[bytes]:
        """The whole completion first, then sent as `chat.completion.chunk` events."""
        completion = self.chat_completion({**body, "stream": False})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return completion_events(completion, include_usage=include_usage)


def sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The limits of a chat body that `complete_chat` honours: max_tokens and temperature."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return {
        "max_tokens": int(limit) if limit else None,
        "temperature": float(body.get("temperature") or 0.0),
    }


SSE_DONE = b"data: [DONE]\n\n"
_PIECES = re.compile(r"\s*\S+\s*|\s+")


def completion_object(model: str, result: ChatResult) -> dict[str, Any]:
    """OpenAI's `chat.completion` object of one reply."""
    return {
        "id": f"chatcmpl-{secrets.token_urlsafe(21)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
    }


def completion_events(completion: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """A finished completion as OpenAI streams it: role, content pieces, finish, [usage], DONE."""
    choice = completion["choices"][0]
    text = choice["message"].get("content") or ""
    deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""}, None)]
    deltas += [({"content": piece}, None) for piece in _PIECES.findall(text)]
    deltas.append(({}, choice.get("finish_reason") or "stop"))
    head = {key: completion[key] for key in ("id", "created", "model")}
    for delta, finish in deltas:
        chunk_choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        yield _event({**head, "object": "chat.completion.chunk", "choices": [chunk_choice]})
    if include_usage:
        usage = completion.get("usage")
        yield _event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    yield SSE_DONE


def piece_events(
    model: str, pieces: Generator[str, None, ChatResult], *, include_usage: bool
) -> Iterator[bytes]:
    """OpenAI's stream of a reply sent as it is generated (`pieces` returns the whole result)."""
    head = {
        "id": f"chatcmpl-{secrets.token_urlsafe(21)}",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _event({**head, "object": "chat.completion.chunk", "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""}, None)
    while True:
        try:
            piece = next(pieces)
        except StopIteration as done:
            result: ChatResult = done.value
            break
        if piece:
            yield chunk({"content": piece}, None)
    yield chunk({}, "stop")
    if include_usage:
        usage = completion_object(model, result)["usage"]
        yield _event({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    yield SSE_DONE


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
