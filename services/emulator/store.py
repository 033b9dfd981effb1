"""In-memory state of the emulator (a test double of OpenAI), guarded by one lock.

Files and jobs live in dicts in insertion order; listings are newest first. Jobs are synced to the
clock on every read (see job.py); listings sync only statuses. Nothing runs in the background but
the webhook thread, while OpenAI-style webhooks are on (webhooks.py).
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ftq.services.emulator import catalog, chat, datafile, faults
from ftq.services.emulator.datafile import DataSummary, FileFailure
from ftq.services.emulator.errors import OpenAIError, bad_request, job_not_found
from ftq.services.emulator.filestore import FileStore, StoredFile
from ftq.services.emulator.ids import random_id, stable_id
from ftq.services.emulator.job import Job, JobSpec, public_event
from ftq.services.emulator.pagination import page, page_of, with_ids
from ftq.services.emulator.permissions import CheckpointPermissions
from ftq.services.emulator.plan import build_plan, resolve_hyperparameters, results_csv
from ftq.services.emulator.telemetry import Telemetry
from ftq.services.emulator.webhooks import WebhookDispatcher, WebhookTarget

ACTIVE = {"validating_files", "queued", "running", "paused"}
# Together AI's unfinished statuses (together/job.py); "queued" and "running" are shared.
ACTIVE |= {"pending", "compressing", "uploading", "cancel_requested"}
REJECT_MESSAGE = "Invalid file format. The emulator's reject_files fault is on: every file fails."
WIND_DOWN_MESSAGE = (
    "Fine-tuning is not available to this organization: OpenAI is winding down self-serve "
    "fine-tuning and this organization cannot create new fine-tuning jobs."
)


class EmulatorState:
    """Everything the emulator remembers; every public method takes the lock."""

    def __init__(
        self,
        speed: float,
        org_slug: str,
        clock: Callable[[], float] = time.time,
        initial_faults: faults.Faults | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.initial_speed = speed
        self.initial_faults = initial_faults
        self.org_slug = org_slug
        self.organization_id = stable_id("org-", 24, org_slug)
        self.clock = clock
        self.webhooks = WebhookDispatcher(self.tick)
        self.reset_hooks: list[Callable[[], None]] = []
        self.reset()

    def reset(self) -> None:
        """Forget all files, jobs and counters; faults and speed return to their initial values."""
        with self.lock:
            self.speed = self.initial_speed
            self.files = FileStore()
            self.jobs: dict[str, Job] = {}
            self.analyses: dict[str, DataSummary] = {}
            self.deleted_models: set[str] = set()
            self.permissions = CheckpointPermissions(self.has_model)
            # The day this account stopped taking new fine-tuning jobs (None: open).
            self.account_closed_since: str | None = None
            self.faults = faults.Faults()
            self.rng = random.Random()
            if self.initial_faults is not None:
                self.set_faults(self.initial_faults.model_copy(deep=True))
            self.telemetry = Telemetry()
            if self.webhooks.enabled:
                self.webhooks.configure(None)
            for hook in self.reset_hooks:
                hook()

    # -- requests and faults -------------------------------------------------------------

    def on_request(
        self, route: str, tokens: int, admin: bool, entry: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], faults.Draw]:
        """Count and log a request; decide its faults (never for admin routes).

        `route` is the `/v1` form that faults match; `entry` (the request log line) names the
        route as called, e.g. `GET /openai/files` for the Azure client.
        """
        with self.lock:
            now = self.clock()
            counted = entry["route"] if entry else route
            headers = self.telemetry.record(counted, tokens, now)
            if entry is not None:
                entry["at"] = now
                self.telemetry.remember(entry)
            draw = faults.Draw() if admin else faults.draw(self.faults, self.rng, route)
            if draw.error is not None:
                self.telemetry.faults[str(draw.error.status)] += 1
            if draw.lose_response:
                self.telemetry.faults["lost_response"] += 1
            return headers, draw

    def set_faults(self, new: faults.Faults) -> dict[str, Any]:
        """Replace the fault configuration; `seed` reseeds the RNG."""
        with self.lock:
            self.faults = new
            if new.seed is not None:
                self.rng = random.Random(new.seed)
            return new.model_dump()

    def set_speed(self, speed: float) -> None:
        """Change the speed factor without making running jobs jump."""
        with self.lock:
            now = self.clock()
            for job in self.jobs.values():
                self._sync(job, now)
                job.reanchor(now, self.speed)
            self.speed = speed

    def stats(self) -> dict[str, Any]:
        """Counters for tests and benchmarks."""
        with self.lock:
            self._sync_all()
            active = sum(job.status in ACTIVE for job in self.jobs.values())
            counts = {"jobs": len(self.jobs), "files": len(self.files), "active_jobs": active}
            return {**self.telemetry.snapshot(), **counts, "speed": self.speed}

    def requests(self, limit: int) -> dict[str, Any]:
        """The last `limit` API requests, newest first (admin routes are not logged)."""
        with self.lock:
            return {"object": "list", "data": self.telemetry.recent(limit)}

    def tick(self) -> None:
        """Bring every job up to now (the webhook thread calls this so jobs finish unobserved)."""
        with self.lock:
            self._sync_all()

    def set_webhooks(self, target: WebhookTarget | None) -> dict[str, Any]:
        """Send OpenAI's `fine_tuning.job.*` webhooks to `target` (None turns them off)."""
        self.webhooks.configure(target)
        return self.webhooks.snapshot()

    # -- files ---------------------------------------------------------------------------

    def add_file(
        self, filename: str, purpose: str, content: bytes, expires_after: int | None = None
    ) -> dict[str, Any]:
        """Store an upload."""
        with self.lock:
            file_id = random_id(self.rng, "file-", 22)
            now = int(self.clock())
            stored = self.files.add(file_id, filename, purpose, content, now, expires_after)
            self.telemetry.files_created += 1
            return stored.to_dict()

    def file(self, file_id: str) -> StoredFile:
        """One file, or OpenAI's 404."""
        with self.lock:
            return self.files.get(file_id)

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file."""
        with self.lock:
            self.analyses.pop(file_id, None)
            return self.files.delete(file_id)

    def list_files(
        self, purpose: str | None, order: str, after: str | None, limit: int
    ) -> dict[str, Any]:
        """Files, `desc` = newest first."""
        with self.lock:
            return self.files.listing(purpose, order, after, limit)

    def _summary(self, file_id: str, param: str) -> DataSummary:
        """The analysis of a file, computed once (outside the lock: it can be slow)."""
        with self.lock:
            cached = self.analyses.get(file_id)
            if cached is not None:
                return cached
            if file_id not in self.files:
                raise bad_request(f"invalid {param}: {file_id}", param)
            content = self.files.get(file_id).content
        summary = datafile.analyze(content)
        with self.lock:
            return self.analyses.setdefault(file_id, summary)

    # -- jobs ----------------------------------------------------------------------------

    def check_create_allowed(self) -> None:
        """The 403 fault: OpenAI's wind-down refusing new jobs."""
        with self.lock:
            refused = self.faults.create_403
        if refused:
            raise OpenAIError(403, WIND_DOWN_MESSAGE, code="fine_tuning_unavailable")

    def create_job(self, spec: JobSpec) -> dict[str, Any]:
        """Check the request like OpenAI, then start the emulated job."""
        spec = self._resolve_model(spec)
        self._check_file(spec.training_file, "training_file")
        if spec.validation_file is not None:
            self._check_file(spec.validation_file, "validation_file")
        training = self._summary(spec.training_file, "training_file")
        failure = self._file_failure(spec, training)
        with self.lock:
            self._check_account()
            self._check_capacity()
            job = self._new_job(spec, training, failure)
            self.jobs[job.id] = job
            self.telemetry.jobs_created += 1
            return self._job_dict(job)

    def _check_account(self) -> None:
        if self.account_closed_since is not None:
            raise OpenAIError(
                403,
                "Fine-tuning is no longer available for this organization "
                f"(since {self.account_closed_since}).",
                type_="invalid_request_error",
                code="fine_tuning_unavailable",
            )

    def _resolve_model(self, spec: JobSpec) -> JobSpec:
        """Aliases become snapshots; `ft:` models must exist here."""
        if spec.model.startswith("ft:") and self._model_job(spec.model) is not None:
            return dataclasses.replace(spec, base_model=catalog.ft_base(spec.model))
        snapshot = catalog.snapshot(spec.model)
        if snapshot is None:
            raise bad_request(
                f"Model {spec.model} is not available for fine-tuning or does not exist.",
                "model",
                "model_not_available",
            )
        return dataclasses.replace(spec, model=snapshot, base_model=snapshot)

    def _check_file(self, file_id: str, param: str) -> None:
        """The file exists and was uploaded for fine-tuning."""
        with self.lock:
            stored = self.files.find(file_id)
        if stored is None:
            raise bad_request(f"invalid {param}: {file_id}", param)
        if stored.purpose != "fine-tune":
            raise bad_request(
                f"File {file_id} has purpose '{stored.purpose}'; fine-tuning needs a file "
                "uploaded with purpose 'fine-tune'.",
                param,
                "invalid_file_purpose",
            )

    def _file_failure(self, spec: JobSpec, training: DataSummary) -> FileFailure | None:
        """Why validation will fail, decided at creation and revealed after validating_files."""
        with self.lock:
            reject = self.faults.reject_files
        if reject:
            return FileFailure("invalid_training_file", REJECT_MESSAGE, "training_file")
        fmt = datafile.expected_format(spec.method_type, spec.base_model)
        failure = datafile.check(training, fmt, "training_file", datafile.MIN_EXAMPLES)
        if failure is None and spec.validation_file is not None:
            validation = self._summary(spec.validation_file, "validation_file")
            failure = datafile.check(validation, fmt, "validation_file", 1)
        return failure

    def _check_capacity(self) -> None:
        """The active-jobs cap fault, answered like OpenAI's per-organization job limit."""
        cap = self.faults.max_active_jobs
        if cap is None:
            return
        self._sync_all()
        active = [
            job.status for job in self.jobs.values() if job.api == "openai" and job.status in ACTIVE
        ]
        if len(active) >= cap:
            running = active.count("running")
            raise OpenAIError(
                429,
                "This fine-tune request has been rate-limited. Your organization has reached the "
                f"maximum of {cap} active fine-tuning jobs ({running} running, "
                f"{len(active) - running} queued or validating).",
                code="rate_limit_exceeded",
                headers=faults.retry_headers(self.faults.retry_after_ms),
            )

    def _new_job(self, spec: JobSpec, training: DataSummary, failure: FileFailure | None) -> Job:
        """Build the job and its plan."""
        now = self.clock()
        job_id = random_id(self.rng, "ftjob-", 24)
        resolved = resolve_hyperparameters(
            spec.hyperparameters, training.n_examples, spec.method_type
        )
        plan = build_plan(
            training.n_examples,
            int(resolved["n_epochs"]),
            int(resolved["batch_size"]),
            spec.validation_file is not None,
            failure is not None,
        )
        name = (
            f"ft:{spec.base_model}:{self.org_slug}:{spec.suffix or ''}:{stable_id('', 8, job_id)}"
        )
        seed = spec.seed if spec.seed is not None else self.rng.randrange(2**31)
        return Job(
            id=job_id,
            spec=spec,
            created_real=now,
            organization_id=self.organization_id,
            seed=seed,
            plan=plan,
            failure=failure,
            resolved=resolved,
            model_name=name,
            tokens_per_epoch=training.tokens,
            anchor_real=now,
        )

    def _sync(self, job: Job, now: float, lazy: bool = False) -> None:
        """Bring one job up to `now` (`lazy`: only if its status moves); publish results."""
        fail_with, was_terminal = self.faults.fail_jobs_with, job.terminal
        job.sync(now, self.speed, fail_with.model_dump() if fail_with else None, lazy)
        if job.terminal and not was_terminal and job.api == "openai":
            self.webhooks.enqueue(job.terminal, job.id, job.finished_at or int(now))
        if job.terminal == "succeeded" and not job.result_files:
            has_valid = job.spec.validation_file is not None
            csv = results_csv(job.id, job.plan.total_steps, has_valid, job.curve)
            file_id, created = random_id(self.rng, "file-", 22), job.finished_at or int(now)
            encoded = base64.b64encode(csv.encode())
            self.files.add(file_id, "step_metrics.csv", "fine-tune-results", encoded, created)
            job.result_files.append(file_id)

    def _sync_all(self) -> None:
        """Bring every job's status up to now; events wait until that job is read."""
        now = self.clock()
        for job in self.jobs.values():
            self._sync(job, now, lazy=True)

    def _job(self, job_id: str, api: str | None = "openai") -> Job:
        """A synced job of `api` (None: of any API), or OpenAI's 404."""
        job = self.jobs.get(job_id)
        if job is None or api not in (None, job.api):
            raise job_not_found(job_id)
        self._sync(job, self.clock())
        return job

    def synced_job(self, job_id: str, api: str) -> Job | None:
        """A job of `api` brought up to now, or None (for other APIs' routes; caller locks)."""
        job = self.jobs.get(job_id)
        if job is None or job.api != api:
            return None
        self._sync(job, self.clock())
        return job

    def _job_dict(self, job: Job) -> dict[str, Any]:
        """A job as JSON (`error` null until it fails, or the live API's shape when switched on)."""
        shown = job.to_dict(self.speed)
        quirk = self.faults.live_error_shape
        if quirk is not None and job.api == "openai" and shown["error"] is None:
            shown["error"] = {} if quirk == "empty" else dict.fromkeys(("code", "message", "param"))
        return shown

    def job(self, job_id: str) -> dict[str, Any]:
        """`GET /v1/fine_tuning/jobs/{id}`."""
        with self.lock:
            return self._job_dict(self._job(job_id))

    def list_jobs(
        self, after: str | None, limit: int, metadata: dict[str, str] | None, no_metadata: bool
    ) -> dict[str, Any]:
        """Jobs newest first, optionally filtered by metadata pairs (or by having none)."""
        with self.lock:
            self._sync_all()
            jobs = [
                job
                for job in reversed(self.jobs.values())
                if job.api == "openai" and _matches(job, metadata, no_metadata)
            ]
            found = page_of(jobs, after, limit, key=lambda job: job.id)
            return {**found, "data": [self._job_dict(job) for job in found["data"]]}

    def events(self, job_id: str, after: str | None, limit: int) -> dict[str, Any]:
        """A job's events newest first."""
        with self.lock:
            job = self._job(job_id)
            return page([public_event(e) for e in reversed(job.events)], after, limit)

    def checkpoints(self, job_id: str, after: str | None, limit: int) -> dict[str, Any]:
        """A job's checkpoints newest first."""
        with self.lock:
            job = self._job(job_id)
            return with_ids(page(list(reversed(job.checkpoints)), after, limit))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """`POST …/cancel`."""
        with self.lock:
            job, now = self._job(job_id), self.clock()
            job.cancel(now)
            self.webhooks.enqueue(job.status, job.id, int(now))
            return self._job_dict(job)

    def pause(self, job_id: str) -> dict[str, Any]:
        """`POST …/pause`."""
        with self.lock:
            job = self._job(job_id)
            job.pause(self.clock(), self.speed)
            return self._job_dict(job)

    def resume(self, job_id: str) -> dict[str, Any]:
        """`POST …/resume`."""
        with self.lock:
            job = self._job(job_id)
            job.resume(self.clock())
            return self._job_dict(job)

    def advance(
        self, job_id: str, seconds: float | None, to_status: str | None = None
    ) -> dict[str, Any]:
        """Jump a job forward by emulated `seconds`, to `to_status`, or (neither) to its end."""
        with self.lock:
            job = self._job(job_id, api=None)
            self._jump(job, seconds, to_status)
            return self._job_dict(job)

    def advance_many(
        self,
        job_ids: list[str] | None,
        count: int | None,
        seconds: float | None,
        to_status: str | None,
    ) -> dict[str, Any]:
        """Jump the given jobs (or the `count` oldest unfinished ones) forward together."""
        with self.lock:
            self._sync_all()
            if job_ids is None:
                unfinished = (job for job in self.jobs.values() if not job.terminal)
                jobs = list(itertools.islice(unfinished, count or 0))
            else:
                jobs = [self._job(job_id, api=None) for job_id in job_ids]
            for job in jobs:
                self._jump(job, seconds, to_status)
            return {"object": "list", "data": [self._job_dict(job) for job in jobs]}

    def _jump(self, job: Job, seconds: float | None, to_status: str | None) -> None:
        """Move one job's clock forward and materialise what became due (caller locks)."""
        now = self.clock()
        if to_status is not None:
            job.reanchor(now, self.speed, at_least=job.offset_of(to_status))
        elif seconds is None:
            job.reanchor(now, self.speed, at_least=job.plan.t_end)
        else:
            job.reanchor(now, self.speed, seconds)
        self._sync(job, now)

    # -- chat ----------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A deterministic chat completion for a known base or `ft:` model."""
        model, messages = body["model"], body["messages"]
        taught: dict[str, str] = {}
        quality = 1.0
        if model.startswith("ft:"):
            job = self._model_job(model)
            if job is None or model in self.deleted_models:
                raise model_not_found(model)
            taught = self._taught(job)
            quality = self._quality(job, model)
        elif model not in catalog.CHAT_MODELS:
            raise model_not_found(model)
        with self.lock:
            completion_id = random_id(self.rng, "chatcmpl-", 29)
        now = int(self.clock())
        return chat.completion(completion_id, model, messages, taught, now, quality)

    def _quality(self, job: Job, model: str) -> float:
        """How well `model` (the job's final model or a checkpoint) follows its training."""
        total = job.plan.total_steps
        steps = {c["fine_tuned_model_checkpoint"]: c["step_number"] for c in job.checkpoints}
        return chat.quality(steps.get(model, total), total, job.curve)

    def delete_model(self, model: str) -> dict[str, Any]:
        """`DELETE /v1/models/{model}`: a fine-tuned model (or checkpoint) of one of its jobs."""
        with self.lock:
            if model in self.deleted_models or self._model_job(model) is None:
                raise model_not_found(model)
            self.deleted_models.add(model)
        return {"id": model, "object": "model", "deleted": True}

    def has_model(self, model: str) -> bool:
        """Whether one of the emulator's jobs made `model` and it was not deleted."""
        return model not in self.deleted_models and self._model_job(model) is not None

    def _taught(self, job: Job) -> dict[str, str]:
        """Prompt -> answer pairs of a job's training file (empty once the file is deleted)."""
        with self.lock:
            present = job.spec.training_file in self.files
        return self._summary(job.spec.training_file, "model").answers if present else {}

    def _model_job(self, model: str) -> Job | None:
        """The job that produced `model` (its final model or one of its checkpoints)."""
        with self.lock:
            for job in self.jobs.values():
                if job.api != "openai":
                    continue
                if model != job.model_name and not model.startswith(job.model_name + ":"):
                    continue
                self._sync(job, self.clock())
                if any(c["fine_tuned_model_checkpoint"] == model for c in job.checkpoints):
                    return job
        return None


def model_not_found(model: str) -> OpenAIError:
    """OpenAI's 404 for an unknown model."""
    return OpenAIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def _matches(job: Job, metadata: dict[str, str] | None, no_metadata: bool) -> bool:
    """Whether a job passes the `metadata[k]=v` (or `metadata=null`) filter."""
    have = job.spec.metadata or {}
    if no_metadata:
        return not have
    return all(have.get(key) == value for key, value in (metadata or {}).items())
