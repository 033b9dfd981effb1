"""Together AI's side of the emulator's state (a test double): files, jobs, downloads, chat.

Files live here (reset with the emulator); jobs live in the shared `EmulatorState.jobs` as
`TogetherJob`s, so the clock, speed, stats, `/_emulator/jobs/{id}/advance` and reset treat them
like OpenAI's. Every public method takes the shared lock.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from ftq.services.emulator import chat, faults
from ftq.services.emulator.errors import OpenAIError
from ftq.services.emulator.ids import stable_id
from ftq.services.emulator.job import JobSpec
from ftq.services.emulator.store import EmulatorState
from ftq.services.emulator.together import artifacts, catalog
from ftq.services.emulator.together.catalog import TogetherModel
from ftq.services.emulator.together.files import TogetherFile, TogetherFiles
from ftq.services.emulator.together.job import TogetherJob, build_plan
from ftq.services.emulator.together.request import (
    CreateBody,
    EstimateBody,
    Inputs,
    TogetherRequest,
    check_model_choice,
    parse,
    resolve,
)
from ftq.services.emulator.together.shapes import (
    invalid,
    job_not_found,
    model_not_available,
    together_id,
)

PURPOSES = {
    "fine-tune",
    "eval",
    "eval-sample",
    "eval-output",
    "eval-summary",
    "batch-generated",
    "batch-api",
    "calibration",
}
FILE_TYPES = {"jsonl", "csv", "parquet"}
DOWNLOAD_KINDS = {
    "merged": "model",
    "model": "model",
    "model_output_path": "model",
    "adapter": "adapter",
}
CREATE_403_MESSAGE = (
    "Fine-tuning is not available to this account (the emulator's create_403 fault is on)."
)


class TogetherState:
    """Together's files and the Together view of the shared jobs."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.files = TogetherFiles()
        self.user_id = stable_id("user_", 24, state.org_slug)
        self.owner = f"{state.org_slug}@emulator.together"
        state.reset_hooks.append(self.reset)

    def reset(self) -> None:
        """Forget every file (jobs go with the shared state)."""
        self.files = TogetherFiles()

    # -- files ---------------------------------------------------------------------------

    def announce_file(
        self, purpose: str, file_name: str, file_type: str, checksum: str | None
    ) -> TogetherFile:
        """`POST /files`: a file id for bytes that the signed-URL PUT will bring."""
        _check_file_fields(purpose, file_name, file_type)
        with self.state.lock:
            file_id = together_id(self.state.rng, "file-")
            now = int(self.state.clock())
            self.state.telemetry.files_created += 1
            return self.files.add(
                TogetherFile(file_id, file_name, purpose, file_type, checksum, now)
            )

    def receive_bytes(self, file_id: str, content: bytes) -> str:
        """The signed-URL PUT: keep the bytes; answer the ETag (their MD5, as S3 does)."""
        with self.state.lock:
            file = self.files.get(file_id)
            if file.status != "PENDING":
                raise invalid(f"File {file_id} was already processed.", "file_id")
            file.content = content
        return uuid.UUID(bytes=_md5(content)).hex

    def preprocess(self, file_id: str) -> dict[str, Any]:
        """`POST /files/{id}/preprocess`: verify the upload and detect its format."""
        with self.state.lock:
            file = self.files.get(file_id)
            if file.content is None:
                raise invalid(f"File {file_id} has no uploaded content yet.", "file_id")
            if file.status == "PENDING":
                file.preprocess()
            return file.to_dict()

    def upload_direct(
        self, purpose: str, file_name: str, file_type: str, content: bytes
    ) -> dict[str, Any]:
        """`POST /files/upload`: the multipart form with the bytes, processed at once."""
        file = self.announce_file(purpose, file_name, file_type, None)
        self.receive_bytes(file.id, content)
        return self.preprocess(file.id)

    def file(self, file_id: str) -> dict[str, Any]:
        """`GET /files/{id}`."""
        with self.state.lock:
            return self.files.get(file_id).to_dict()

    def file_content(self, file_id: str) -> bytes:
        """`GET /files/{id}/content`."""
        with self.state.lock:
            return self.files.get(file_id).content or b""

    def list_files(self) -> dict[str, Any]:
        """`GET /files`, newest first."""
        with self.state.lock:
            return self.files.listing()

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """`DELETE /files/{id}`."""
        with self.state.lock:
            return self.files.delete(file_id)

    # -- models and prices ---------------------------------------------------------------

    def limits(self, model_name: str) -> dict[str, Any]:
        """`GET /fine-tunes/models/limits`: a base model, or a job / output name to continue."""
        with self.state.lock:
            if model_name in catalog.MODELS:
                return catalog.limits(catalog.MODELS[model_name])
            parent = self._find_job(model_name)
        if parent is None:
            raise model_not_available(model_name)
        return catalog.limits(parent.request.model)

    def supported(self) -> dict[str, Any]:
        """`GET /fine-tunes/models/supported`."""
        return {"models": sorted(catalog.MODELS)}

    def estimate(self, raw: Any) -> dict[str, Any]:
        """`POST /fine-tunes/estimate-price` (unavailable while a file is not validated)."""
        body = parse(EstimateBody, raw)
        with self.state.lock:
            reason = self._estimate_blocker(body)
            if reason is not None:
                return {"estimation_available": False, "unavailable_reason": reason}
            model = self._estimate_model(body)
            training = self.files.get(body.training_file)
            validation = self.files.find(body.validation_file or "")
        method, lora = body.method, body.lora
        train_tokens = training.tokens * body.n_epochs
        eval_tokens = (validation.tokens if validation else 0) * body.n_evals
        return {
            "estimation_available": True,
            "estimated_total_price": catalog.price(model, train_tokens + eval_tokens, method, lora),
            "allowed_to_proceed": True,
            "user_limit": 1000.0,
            "estimated_train_token_count": float(train_tokens),
            "estimated_eval_token_count": float(eval_tokens),
        }

    def _estimate_blocker(self, body: EstimateBody) -> str | None:
        """Why no price can be estimated yet (Together's `unavailable_reason`)."""
        for file_id, prefix in ((body.training_file, "train"), (body.validation_file, "eval")):
            if not file_id:
                continue
            file = self.files.get(file_id)
            if file.status == "PENDING":
                return f"{prefix}_file_not_validated"
            if file.status != "COMPLETED":
                return f"{prefix}_file_invalid"
        return None

    def _estimate_model(self, body: EstimateBody) -> TogetherModel:
        """The base model an estimate is for (`model`, or the checkpoint's base)."""
        name = body.model or body.from_checkpoint or ""
        if name in catalog.MODELS:
            return catalog.MODELS[name]
        parent = self._find_job(_checkpoint_job(name)[0])
        if parent is None:
            raise model_not_available(name)
        return parent.request.model

    # -- jobs ----------------------------------------------------------------------------

    def create(self, raw: Any) -> dict[str, Any]:
        """`POST /fine-tunes`: check like Together, then start the emulated job."""
        with self.state.lock:
            if self.state.faults.create_403:
                raise OpenAIError(403, CREATE_403_MESSAGE, code="fine_tuning_unavailable")
        body = parse(CreateBody, raw)
        check_model_choice(body)
        with self.state.lock:
            request = resolve(body, self._inputs(body))
            self._check_capacity()
            job = self._new_job(request)
            self.state.jobs[job.id] = job
            self.state.telemetry.jobs_created += 1
            return job.truncated(self.state.speed)

    def _inputs(self, body: CreateBody) -> Inputs:
        """The base model, parent job and data a create request refers to (caller locks)."""
        parent = self._parent(body.from_checkpoint) if body.from_checkpoint else None
        model = parent.model if parent is not None else catalog.MODELS.get(body.model or "")
        if model is None:
            raise model_not_available(str(body.model))
        training = self._usable_file(body.training_file, "training_file")
        validation = (
            self._usable_file(body.validation_file, "validation_file")
            if body.validation_file
            else None
        )
        return Inputs(
            model=model,
            parent=parent,
            training_format=str(training.dataset_format),
            validation_format=validation.dataset_format if validation else None,
            n_examples=training.n_examples,
            tokens=training.tokens,
            file_bytes=len(training.content or b""),
        )

    def _usable_file(self, file_id: str, param: str) -> TogetherFile:
        """A processed, valid fine-tune file (caller locks)."""
        file = self.files.find(file_id)
        if file is None:
            raise invalid(f"Invalid {param}: file {file_id} not found.", param)
        if file.purpose != "fine-tune":
            raise invalid(f"File {file_id} has purpose '{file.purpose}', not 'fine-tune'.", param)
        if file.status != "COMPLETED":
            report = file.report or {}
            why = report.get("error") or "it has not been processed (call preprocess after upload)"
            raise invalid(f"File {file_id} cannot be used: {why}", param, "invalid_file")
        return file

    def _parent(self, reference: str) -> TogetherRequest:
        """The request of the job a `from_checkpoint` names, checked usable (caller locks)."""
        name, step = _checkpoint_job(reference)
        parent = self._find_job(name)
        if parent is None:
            raise invalid(f"Checkpoint {reference} not found.", "from_checkpoint")
        steps = {int(c["step"]) for c in parent.checkpoints}
        if (step is None and parent.status != "completed") or (
            step is not None and step not in steps
        ):
            raise invalid(
                f"Checkpoint {reference} is not available (job {parent.id} is {parent.status}).",
                "from_checkpoint",
            )
        return parent.request

    def _check_capacity(self) -> None:
        """The `max_active_jobs` fault, counted over Together jobs (caller locks)."""
        cap = self.state.faults.max_active_jobs
        if cap is None:
            return
        self.state.tick()
        active = sum(1 for job in self._jobs() if not job.terminal)
        if active >= cap:
            raise OpenAIError(
                429,
                f"You have reached the maximum of {cap} concurrent fine-tuning jobs. Wait for one "
                "to finish or cancel one.",
                type_="rate_limit",
                code="rate_limit_exceeded",
                headers=faults.retry_headers(self.state.faults.retry_after_ms),
            )

    def _new_job(self, request: TogetherRequest) -> TogetherJob:
        """Build a job and its plan (caller locks)."""
        state, now = self.state, self.state.clock()
        job_id = together_id(state.rng, "ft-")
        spec = JobSpec(
            model=request.model.name,
            base_model=request.model.name,
            training_file=request.training_file,
            validation_file=request.validation_file,
            suffix=request.suffix,
            seed=request.random_seed,
            metadata=None,
            integrations=None,
            method_type="dpo" if request.method == "dpo" else "supervised",
            method_extra={},
            hyperparameters={},
        )
        return TogetherJob(
            id=job_id,
            spec=spec,
            created_real=now,
            organization_id=state.organization_id,
            seed=request.random_seed if request.random_seed is not None else 42,
            plan=build_plan(request, rejected=state.faults.reject_files),
            failure=None,
            resolved={},
            model_name=self._output_name(request, job_id),
            tokens_per_epoch=request.tokens,
            anchor_real=now,
            request=request,
            user_id=self.user_id,
            owner=self.owner,
        )

    def _output_name(self, request: TogetherRequest, job_id: str) -> str:
        """`{account}/{base model}-{suffix}-{8 hex}`, as Together names fine-tuned models."""
        parts = [
            request.model.short_name,
            request.suffix,
            uuid.uuid5(uuid.NAMESPACE_URL, job_id).hex[:8],
        ]
        return f"{self.state.org_slug}/" + "-".join(p for p in parts if p)

    def job(self, job_id: str) -> dict[str, Any]:
        """`GET /fine-tunes/{id}`."""
        with self.state.lock:
            return self._job(job_id).to_dict(self.state.speed)

    def list_jobs(self) -> dict[str, Any]:
        """`GET /fine-tunes`: every Together job, newest first."""
        with self.state.lock:
            self.state.tick()
            return {"data": [job.truncated(self.state.speed) for job in reversed(self._jobs())]}

    def cancel(self, job_id: str) -> dict[str, Any]:
        """`POST /fine-tunes/{id}/cancel`."""
        with self.state.lock:
            job = self._job(job_id)
            job.request_cancel(self.state.clock(), self.state.speed)
            return job.truncated(self.state.speed)

    def delete(self, job_id: str) -> dict[str, Any]:
        """`DELETE /fine-tunes/{id}`: only a finished job (cancel a running one first)."""
        with self.state.lock:
            job = self._job(job_id)
            if not job.terminal:
                raise invalid(f"Fine-tune job {job_id} is {job.status}; cancel it first.", "id")
            del self.state.jobs[job_id]
            return {"message": f"Fine-tune job {job_id} deleted"}

    def events(self, job_id: str) -> dict[str, Any]:
        """`GET /fine-tunes/{id}/events`, oldest first."""
        with self.state.lock:
            return {"data": self._job(job_id).to_dict(self.state.speed)["events"]}

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        """`GET /fine-tunes/{id}/checkpoints`, newest first."""
        with self.state.lock:
            return {"data": self._job(job_id).listed_checkpoints()}

    def metrics(
        self, job_id: str, step_from: int | None, step_to: int | None, resolution: int | None
    ) -> dict[str, Any]:
        """`GET /fine-tunes/{id}/metrics`, chronological."""
        with self.state.lock:
            job = self._job(job_id)
            return {"metrics": artifacts.metrics(job, step_from, step_to, resolution)}

    def download(self, job_id: str, step: int | None, checkpoint: str | None) -> tuple[bytes, str]:
        """`GET /finetune/download`: (tarball, file name) of the final model or a checkpoint."""
        with self.state.lock:
            job = self._job(job_id)
            kind = DOWNLOAD_KINDS.get(checkpoint or "merged")
            if kind is None:
                raise invalid(f"Unknown checkpoint type {checkpoint!r}.", "checkpoint")
            step = step or None
            if step is None or step == job.plan.total_steps:
                step, kind = self._final(job, kind)
            else:
                kind = self._intermediate(job, step)
        name = job.model_name.rsplit("/", 1)[-1]
        suffix = f"-checkpoint-{step}" if step != job.plan.total_steps else ""
        return artifacts.archive(job, step, kind), f"{name}{suffix}.tar.gz"

    def _final(self, job: TogetherJob, kind: str) -> tuple[int, str]:
        """The final model's step and kind; only once the job completed."""
        if job.status != "completed":
            raise invalid(
                f"Fine-tune job {job.id} is {job.status}; its model is not ready.", "ft_id"
            )
        if kind == "adapter" and not job.request.lora:
            raise invalid("Full fine-tuning jobs have no adapter to download.", "checkpoint")
        return job.plan.total_steps, kind

    def _intermediate(self, job: TogetherJob, step: int) -> str:
        """The kind of an intermediate checkpoint, or the 404."""
        for saved in job.checkpoints:
            if saved["step"] == step:
                return str(saved["checkpoint"])
        raise OpenAIError(
            404, f"No checkpoint at step {step} for {job.id}.", param="checkpoint_step"
        )

    # -- chat ----------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A deterministic completion for a base model or a completed job's output model."""
        model = body["model"]
        with self.state.lock:
            taught = self._taught(model)
            completion_id = f"{self.state.rng.getrandbits(64):016x}-EMU"
            seed = self.state.rng.getrandbits(62)
            now = int(self.state.clock())
        completion = chat.completion(completion_id, model, body["messages"], taught, now)
        message = completion["choices"][0]["message"]
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": now,
            "model": model,
            "prompt": [],
            "choices": [
                {
                    "index": 0,
                    "seed": seed,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": message["content"],
                        "tool_calls": [],
                    },
                }
            ],
            "usage": completion["usage"],
        }

    def _taught(self, model: str) -> dict[str, str]:
        """Prompt -> answer pairs a model learnt (none for base models); 404 if unknown."""
        if model in catalog.MODELS:
            return {}
        job = self._find_job(model)
        if job is None or job.model_name != model or job.status != "completed":
            raise model_not_available(model)
        training = self.files.find(job.request.training_file)
        return dict(training.answers) if training else {}

    # -- lookups (caller locks) ----------------------------------------------------------

    def _jobs(self) -> list[TogetherJob]:
        """Every Together job in creation order."""
        return [job for job in self.state.jobs.values() if isinstance(job, TogetherJob)]

    def _job(self, job_id: str) -> TogetherJob:
        """A synced Together job, or the 404."""
        job = self.state.synced_job(job_id, "together")
        if not isinstance(job, TogetherJob):
            raise job_not_found(job_id)
        return job

    def _find_job(self, name: str) -> TogetherJob | None:
        """A synced Together job by id or output model name."""
        for job in self._jobs():
            if name in (job.id, job.model_name):
                return self._job(job.id)
        return None


def _checkpoint_job(reference: str) -> tuple[str, int | None]:
    """`{job or output name}[:{step}]` split into the name and the step."""
    name, _, step = reference.rpartition(":")
    if name and step.isdigit():
        return name, int(step)
    return reference, None


def _check_file_fields(purpose: str, file_name: str, file_type: str) -> None:
    """A known purpose and type and a file name."""
    if purpose not in PURPOSES:
        raise invalid(
            f"Invalid purpose '{purpose}': expected one of {sorted(PURPOSES)}.", "purpose"
        )
    if not file_name:
        raise OpenAIError(400, "Missing required parameter: 'file_name'.", param="file_name")
    if file_type not in FILE_TYPES:
        raise invalid(
            f"Invalid file_type '{file_type}': expected one of {sorted(FILE_TYPES)}.", "file_type"
        )


def _md5(content: bytes) -> bytes:
    """The MD5 digest S3 uses as an ETag (not for security)."""
    return hashlib.md5(content, usedforsecurity=False).digest()
