"""The `together` provider: Together AI's files, fine-tuning jobs and chat through its SDK.

The client is built with `max_retries=0` (ftq retries, honouring `retry-after`, and a create must
never be re-sent blind). `fine_tuning.create` first reads the model's limits and a price estimate,
then POSTs the job; the SDK's own checks (batch size against the model's limits, options of the
other training method) raise before anything is created and are `ProviderRejected`. Every call is
counted in `ftq_provider_calls_total{provider="together", operation, outcome}`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import together
from together import Together
from together._constants import RAW_RESPONSE_HEADER

from ftq.shared.observability.metrics import record_provider_call
from ftq.shared.providers.base import (
    ChatResult,
    JobPage,
    JobSpec,
    ProviderBase,
    ProviderCheckpoint,
    ProviderError,
    ProviderEvent,
    ProviderJob,
    ProviderRejected,
    ProviderRetryable,
    classify_status,
)
from ftq.shared.providers.together import mapping

JOB_PAGE = 100


class TogetherProvider(ProviderBase):
    """Every call goes through one SDK client; SDK errors become ftq's provider errors."""

    lists_jobs = True

    def __init__(self, client: Together, name: str = "together") -> None:
        self.name = name
        self.client = client

    def _call(self, operation: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the SDK, count the call, and classify its failure."""
        try:
            result = func(*args, **kwargs)
        except together.APIStatusError as exc:
            record_provider_call(self.name, operation, str(exc.status_code))
            raise classify(exc) from exc
        except together.APIConnectionError as exc:
            record_provider_call(self.name, operation, "connection_error")
            raise ProviderRetryable(f"provider unreachable: {type(exc).__name__}") from exc
        except (together.TogetherError, ValueError) as exc:
            record_provider_call(self.name, operation, "rejected")
            raise ProviderRejected(str(exc), code="invalid_request") from exc
        record_provider_call(self.name, operation, "ok")
        return result

    # -- files ------------------------------------------------------------------------------

    def upload_file(self, path: Path, filename: str) -> str:
        """Upload a JSONL file for fine-tuning under `filename` (the SDK names it by its path)."""
        with tempfile.TemporaryDirectory(prefix="ftq-together-") as folder:
            named = Path(folder) / filename
            _link_or_copy(path, named)
            created = self._call(
                "upload_file", self.client.files.upload, named, purpose="fine-tune", check=True
            )
        return str(created.id)

    def find_file(self, filename: str, size: int) -> str | None:
        """The newest fine-tune file with this name and size (Together lists every file at once)."""
        listed = self._call("list_files", self.client.files.list).data
        matches = [
            item
            for item in listed
            if item.filename == filename and int(item.bytes) == size and item.purpose == "fine-tune"
        ]
        newest = max(matches, key=lambda item: (int(item.created_at or 0), item.id), default=None)
        return str(newest.id) if newest is not None else None

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
        """A result file (a job's metrics as OpenAI's CSV) or an uploaded file's bytes."""
        job_id = mapping.result_job_id(file_id)
        if job_id is not None:
            return mapping.result_csv(self._metric_rows(job_id, None))
        response = self._call("file_content", self.client.files.content, file_id)
        return bytes(response.read())

    def check_credential(self) -> None:
        """List the files: the cheapest call that needs the key fine-tuning needs."""
        self._call("check_credential", self.client.files.list)

    # -- jobs -------------------------------------------------------------------------------

    def find_job(self, ftq_job_id: str) -> ProviderJob | None:
        """Our job by the tag in its suffix (Together keeps no metadata), newest first."""
        for job in self._all_jobs("find_job"):
            if job.ftq_job_id == ftq_job_id:
                return job
        return None

    def create_job(self, spec: JobSpec) -> ProviderJob:
        """Create the Together job, our id in its suffix."""
        arguments = mapping.create_arguments(spec)
        created = self._call("create_job", self.client.fine_tuning.create, **arguments)
        return mapping.to_job(created)

    def get_job(self, provider_job_id: str) -> ProviderJob:
        """Retrieve one job."""
        return mapping.to_job(
            self._call("retrieve_job", self.client.fine_tuning.retrieve, provider_job_id)
        )

    def list_jobs(self, after: str | None = None, limit: int = JOB_PAGE) -> JobPage:
        """A page of the account's jobs, newest first, cut from Together's single list."""
        jobs = self._all_jobs("list_jobs")
        ids = [job.id for job in jobs]
        start = ids.index(after) + 1 if after in ids else 0
        page = jobs[start : start + limit]
        return JobPage(jobs=list(page), has_more=start + limit < len(jobs))

    def _all_jobs(self, operation: str) -> list[mapping.TogetherJob]:
        listed = self._call(operation, self.client.fine_tuning.list).data
        return mapping.newest_first(mapping.to_job(job) for job in listed)

    def events_after(self, provider_job_id: str, cursor: str | None) -> list[ProviderEvent]:
        """Together's events after the cursor, then the metrics steps since the last one read.

        Metrics come last, so once a job logs metrics the cursor names a step (`tm-<step>`):
        Together's events, then read whole, are skipped by id when stored; the cursor step is
        read again (and skipped) so the cursor stays on the metrics.
        """
        listed = self._call("list_events", self.client.fine_tuning.list_events, provider_job_id)
        events = [mapping.to_event(event) for event in listed.data]
        rows = self._metric_rows(provider_job_id, mapping.metric_step(cursor))
        total = mapping.total_steps(events)
        steps = [mapping.metric_event(point, total) for point in mapping.metric_points(rows)]
        return mapping.after_cursor(events, cursor) + steps

    def _metric_rows(self, provider_job_id: str, from_step: int | None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {} if from_step is None else {"global_step_from": from_step}
        try:
            listed = self._call(
                "list_metrics", self.client.fine_tuning.list_metrics, provider_job_id, **kwargs
            )
        except ProviderRejected as exc:
            if exc.status == 404:  # no metrics recorded (yet): the job's events still count
                return []
            raise
        return [dict(row) for row in listed.metrics or []]

    def list_checkpoints(self, provider_job_id: str) -> list[ProviderCheckpoint]:
        """A job's checkpoints with the metrics of their step, oldest first."""
        listed = self._call(
            "list_checkpoints", self.client.fine_tuning.list_checkpoints, provider_job_id
        )
        if not listed.data:
            return []
        points = mapping.metric_points(self._metric_rows(provider_job_id, None))
        by_step = {int(point["step"]): point for point in points}
        found = [mapping.to_checkpoint(item, provider_job_id, by_step) for item in listed.data]
        return sorted(found, key=lambda checkpoint: (checkpoint.step_number, checkpoint.id))

    def cancel_job(self, provider_job_id: str) -> ProviderJob:
        """Ask Together to cancel a job (it answers `cancel_requested`, then `cancelled`)."""
        return mapping.to_job(
            self._call("cancel_job", self.client.fine_tuning.cancel, provider_job_id)
        )

    def download_weights(
        self, provider_job_id: str, target: Path, *, kind: str = "adapter", step: int | None = None
    ) -> Path:
        """Stream a finished job's weights (`adapter` or `merged`, or one step's) to a file."""
        options: dict[str, Any] = {"ft_id": provider_job_id}
        options.update({"checkpoint_step": step} if step is not None else {"checkpoint": kind})
        opened = self.client.fine_tuning.with_streaming_response.content(**options)
        response = self._call("download_weights", opened.__enter__)
        try:
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        except httpx.HTTPError as exc:
            raise ProviderRetryable(f"the download broke: {type(exc).__name__}") from exc
        finally:
            opened.__exit__(None, None, None)
        return target

    # -- chat -------------------------------------------------------------------------------

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        """One chat completion (evals of base and fine-tuned Together models)."""
        answer = self.chat_completion(
            {
                "model": model,
                "messages": messages,
                "temperature": temperature,
                **({"max_tokens": max_tokens} if max_tokens is not None else {}),
            }
        )
        usage = answer.get("usage") or {}
        return ChatResult(
            text=str(answer["choices"][0]["message"].get("content") or ""),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST the caller's body as-is to Together's OpenAI-compatible chat completions."""
        response = self._call(
            "chat_completion",
            self.client.post,
            "/v1/chat/completions",
            body=body,
            cast_to=httpx.Response,
        )
        answer: dict[str, Any] = response.json()
        return answer

    def chat_completion_stream(self, body: dict[str, Any]) -> Iterator[bytes]:
        """Open the stream now (errors raise here), then relay its bytes as they arrive."""
        response = self._call(
            "chat_completion_stream",
            self.client.post,
            "/v1/chat/completions",
            body=body,
            cast_to=httpx.Response,
            options={"headers": {RAW_RESPONSE_HEADER: "stream"}},
        )
        return self._relayed(response)

    def _relayed(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            record_provider_call(self.name, "chat_completion_stream", "broken_stream")
            raise ProviderRetryable(f"provider stream broke: {type(exc).__name__}") from exc
        finally:
            response.close()


def _link_or_copy(source: Path, target: Path) -> None:
    """Give a blob the upload's filename without copying it where the filesystem allows."""
    try:
        target.symlink_to(source.resolve())
    except OSError:
        shutil.copyfile(source, target)


def classify(exc: together.APIStatusError) -> ProviderError:
    """An HTTP error as ftq's retry / reject / unavailable classes."""
    return classify_status(exc.status_code, _message(exc), _code(exc), exc.response.headers)


def _error_body(exc: together.APIStatusError) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner: dict[str, Any] = body["error"]
        return inner
    return body if isinstance(body, dict) else {}


def _message(exc: together.APIStatusError) -> str:
    message = _error_body(exc).get("message")
    return message if isinstance(message, str) and message else str(exc.message)


def _code(exc: together.APIStatusError) -> str | None:
    code = _error_body(exc).get("code")
    return str(code) if code else None
