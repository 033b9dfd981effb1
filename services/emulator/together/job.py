"""One emulated Together AI fine-tuning job: the emulator's Job clock with Together's timeline.

Timeline, in emulated seconds (real = emulated / speed): `pending` 30, `queued` 30, `running` one
step every `min(3, 1500 / total_steps)` (as the OpenAI side), `compressing` 15, `uploading` 15,
then `completed`; `total_steps = n_epochs * ceil(N / batch_size)`. A cancel answers
`cancel_requested` and becomes `cancelled` 10 emulated seconds later; a job failed by
`fail_jobs_with` (or rejected by `reject_files`) ends in `error` with a `job_error` event that
carries the message (Together's job object has no error field). Events materialise when the job
is read; listing only moves statuses (job.py's lazy sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ftq.services.emulator.job import Job
from ftq.services.emulator.plan import (
    PUBLISH_S,
    QUEUE_S,
    VALIDATE_S,
    Plan,
    Planned,
    step_seconds,
)
from ftq.services.emulator.together.catalog import price
from ftq.services.emulator.together.request import TogetherRequest
from ftq.services.emulator.together.shapes import event, invalid, iso, public

COMPRESS_S = PUBLISH_S / 2
UPLOAD_S = PUBLISH_S / 2
CANCEL_S = 10.0
REJECT_MESSAGE = "Invalid file format. The emulator's reject_files fault is on: every file fails."
STORE = "s3://together-emulator/finetune"


def spread(total: int, count: int) -> tuple[int, ...]:
    """`count` steps spread evenly over 1..total, the last being `total` (fewer if they meet)."""
    return tuple(sorted({max(1, round(total * k / count)) for k in range(1, count + 1)}))


def build_plan(request: TogetherRequest, rejected: bool) -> Plan:
    """Schedule a job: start, epoch ends, intermediate checkpoints, compress, upload, finish."""
    total, per_epoch = request.total_steps, request.steps_per_epoch
    t_running, step = VALIDATE_S + QUEUE_S, step_seconds(total)
    head = [Planned(0.0, "pending"), Planned(t_running, "start")]
    if rejected:
        events = (*head, Planned(t_running, "rejected"))
        return Plan(events, VALIDATE_S, t_running, t_running, total, per_epoch, (), True)
    saves = tuple(s for s in spread(total, request.n_checkpoints) if s != total)
    body = []
    for number in range(1, total + 1):
        if number % per_epoch == 0:
            body.append(Planned(t_running + step * number, "epoch", number))
        if number in saves:
            body.append(Planned(t_running + step * number, "checkpoint", number))
    trained = t_running + step * total
    t_end = trained + COMPRESS_S + UPLOAD_S
    tail = [
        Planned(trained, "trained", total),
        Planned(trained, "compressing"),
        Planned(trained + COMPRESS_S, "compressed"),
        Planned(trained + COMPRESS_S, "uploading"),
        Planned(t_end, "uploaded"),
        Planned(t_end, "completed", total),
    ]
    events = (*head, *body, *tail)
    return Plan(events, VALIDATE_S, t_running, t_end, total, per_epoch, saves, False)


MESSAGES = {
    "trained": ("training_complete", "Training completed for {model}"),
    "compressing": ("model_compressing", "Compressing output model"),
    "compressed": ("model_compression_complete", "Model compression complete"),
    "uploading": ("model_uploading", "Uploading output model"),
    "uploaded": ("model_upload_complete", "Model upload complete"),
}


@dataclass(kw_only=True)
class TogetherJob(Job):
    """A Together job on the shared clock; `status` speaks Together's lifecycle."""

    api: ClassVar[str] = "together"
    request: TogetherRequest
    user_id: str
    owner: str
    cancel_at: float | None = None

    @property
    def t_trained(self) -> float:
        """When training ends and compression begins."""
        return self.plan.t_end - COMPRESS_S - UPLOAD_S

    @property
    def t_upload(self) -> float:
        """When uploading begins."""
        return self.plan.t_end - UPLOAD_S

    @property
    def status(self) -> str:
        """pending, queued, running, compressing, uploading, cancel_requested or an end."""
        if self.terminal:
            return self.terminal
        if self.cancel_at is not None:
            return "cancel_requested"
        reached = [
            ("queued", self.plan.t_queued),
            ("running", self.plan.t_running),
            ("compressing", self.t_trained),
            ("uploading", self.t_upload),
        ]
        return next((s for s, at in reversed(reached) if self.synced >= at), "pending")

    @property
    def model_path(self) -> str:
        """Where the final weights live."""
        return f"{STORE}/{self.id}/{self.model_name}"

    def offset_of(self, status: str) -> float:
        """The emulated time a status begins (`succeeded` is an alias of `completed`)."""
        offsets = {
            "pending": 0.0,
            "queued": self.plan.t_queued,
            "running": self.plan.t_running,
            "compressing": self.t_trained,
            "uploading": self.t_upload,
            "completed": self.plan.t_end,
            "succeeded": self.plan.t_end,
        }
        return offsets[status]

    def _end(self, terminal: str, when: float) -> None:
        """Finish the job as `terminal` at real time `when`."""
        self.terminal, self.finished_at = terminal, int(when)

    def _milestone_between(self, start: float, end: float) -> bool:
        """Whether a status change lies in (start, end]."""
        offsets = [self.plan.t_queued, self.plan.t_running, self.t_trained, self.t_upload]
        offsets.append(self.plan.t_end)
        return any(start < offset <= end for offset in offsets)

    def sync(
        self, now: float, speed: float, fail_with: dict[str, Any] | None, lazy: bool = False
    ) -> None:
        """Materialise what is due; a requested cancel ends the job CANCEL_S later."""
        if self.cancel_at is None:
            super().sync(now, speed, fail_with, lazy)
            return
        done_at = self.cancel_at + CANCEL_S
        if self.terminal or self.progress(now, speed) < done_at:
            return
        when = self._when(done_at, now, speed)
        self.add_event(when, "Job was cancelled by the user", type_="job_stopped")
        self._end("cancelled", when)

    def request_cancel(self, now: float, speed: float) -> None:
        """`POST /fine-tunes/{id}/cancel`: stop training; cancelled after CANCEL_S."""
        if self.terminal:
            raise invalid(f"Fine-tune job {self.id} is already {self.terminal}.", "id")
        if self.cancel_at is None:
            self.cancel_at = self.progress(now, speed)
            self.add_event(now, "Job cancellation requested by the user", type_="cancel_requested")

    def fail(self, failure: dict[str, Any], now: float) -> None:
        """End an active job in `error` with a `job_error` event."""
        self.add_event(now, failure["message"], level="error", type_="job_error")
        self._end("error", now)
        self.error = {"code": failure["code"], "message": failure["message"]}

    def add_event(
        self,
        when: float,
        message: str,
        *,
        level: str = "info",
        type_: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append a Together `fine-tune-event`."""
        extra = {"level": level, "total_steps": self.plan.total_steps, **(data or {})}
        self.events.append(event(self.id, len(self.events), when, message, type_, extra))

    def _apply(self, planned: Planned, when: float) -> None:
        """Record one planned event."""
        kind, model = planned.kind, self.request.model.name
        if kind == "pending":
            self.add_event(when, "Fine tune request created", type_="job_pending")
        elif kind == "start":
            self._start(when)
        elif kind == "epoch":
            epoch = planned.step // self.plan.steps_per_epoch
            message = f"Epoch {epoch} completed, at step {planned.step}"
            self.add_event(when, message, type_="epoch_complete", data={"step": planned.step})
        elif kind == "checkpoint":
            self._checkpoint_saved(planned.step, when)
        elif kind in MESSAGES:
            type_, message = MESSAGES[kind]
            self.add_event(when, message.format(model=model), type_=type_)
        else:
            self._finish(kind, when)

    def _start(self, when: float) -> None:
        """The burst of events when a job leaves the queue."""
        model, request = self.request.model, self.request
        steps = [
            ("job_start", f"Job started at {iso(when)}"),
            ("model_downloading", "Model data downloading"),
            ("model_download_complete", f"Model data downloaded for {model.name}"),
            ("training_data_downloading", "Training data downloading"),
            ("training_data_download_complete", f"Training data downloaded for {model.name}"),
        ]
        if request.validation_file:
            steps.append(("validation_data_downloading", "Validation data downloading"))
            steps.append(("validation_data_download_complete", "Validation data downloaded"))
        for type_, message in steps:
            self.add_event(when, message, type_=type_)
        if request.wandb:
            self.add_event(
                when,
                "WandB run initialized.",
                type_="wandb_init",
                data={"wandb_url": self.wandb_url},
            )
        counts = {"param_count": model.param_count, "token_count": request.tokens}
        message = f"Training started for model {model.name}"
        self.add_event(when, message, type_="training_start", data=counts)

    def _checkpoint_saved(self, step: int, when: float) -> None:
        """An intermediate checkpoint: the event and its checkpoint record."""
        path = f"{self.model_path}/checkpoints/step-{step}"
        data = {"step": step, "checkpoint_path": path}
        self.add_event(
            when, f"New checkpoint saved at step {step}", type_="checkpoint_save", data=data
        )
        kind = "adapter" if self.request.lora else "model"
        self._record(step, when, path, f"Intermediate (step {step})", kind)

    def _finish(self, kind: str, when: float) -> None:
        """The job's end: the final model, or the reject_files error."""
        if kind == "rejected":
            self.add_event(when, REJECT_MESSAGE, level="error", type_="job_error")
            self._end("error", when)
            return
        total = self.plan.total_steps
        if self.request.lora:
            self._record(total, when, self.model_path + "_adapter", "Final Adapter", "adapter")
        self._record(
            total, when, self.model_path, "Final Merged" if self.request.lora else "Final", "model"
        )
        message = f"Fine-tuning job completed. Created model: {self.model_name}"
        self.add_event(when, message, type_="job_complete", data={"model_path": self.model_path})
        self._end("completed", when)
        self.trained_tokens = self.request.tokens * self.request.n_epochs

    def _record(self, step: int, when: float, path: str, label: str, kind: str) -> None:
        """One entry of `/fine-tunes/{id}/checkpoints`."""
        self.checkpoints.append(
            {
                "step": step,
                "created_at": iso(when),
                "path": path,
                "checkpoint_type": label,
                "checkpoint": kind,
                "object_name": f"{self.model_name}-step-{step}-{kind}",
                "_at": when,
            }
        )

    @property
    def wandb_url(self) -> str:
        """The W&B run page, when a W&B key came with the request."""
        if not self.request.wandb:
            return ""
        shown = self.request.shown
        entity = shown["wandb_entity"] or "together"
        project = shown["wandb_project_name"] or "together"
        return f"https://wandb.ai/{entity}/{project}/runs/{self.id}"

    def listed_checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints newest first (the final ones first once the job completed)."""
        return [public(c) for c in reversed(self.checkpoints)]

    def steps_done(self) -> int:
        """Training steps reached so far."""
        if self.synced < self.plan.t_running or self.plan.fails_validation:
            return 0
        elapsed = min(self.synced, self.t_trained) - self.plan.t_running
        step = step_seconds(self.plan.total_steps)
        return min(self.plan.total_steps, int(elapsed / step + 1e-9))

    def truncated(self, speed: float) -> dict[str, Any]:
        """`FinetuneResponseTruncated` (create, list, cancel)."""
        request = self.request
        last = self.events[-1]["_at"] if self.events else self.created_real
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created_at": iso(self.created_real),
            "updated_at": iso(last),
            "user_id": self.user_id,
            "owner_address": self.owner,
            "model": request.model.name,
            "model_output_name": self.model_name,
            "adapter_output_name": f"{self.model_name}-adapter" if request.lora else None,
            "suffix": request.suffix or "",
            "training_file": request.training_file,
            "validation_file": request.validation_file or "",
            "n_epochs": request.n_epochs,
            "n_checkpoints": request.n_checkpoints,
            "n_evals": request.n_evals,
            "token_count": request.tokens * request.n_epochs,
            "total_price": self.total_price_cents,
            "progress": self._progress(speed),
            **request.shown,
        }
        started = self._started_at()
        if started is not None:
            body["started_at"] = iso(started)
        return body

    def to_dict(self, speed: float) -> dict[str, Any]:
        """`FinetuneResponse` (retrieve): the truncated fields plus progress and events."""
        request, steps = self.request, self.steps_done()
        return {
            **self.truncated(speed),
            "job_id": self.id,
            "model_output_path": self.model_path,
            "trainingfile_numlines": request.n_examples,
            "trainingfile_size": request.file_bytes,
            "param_count": request.model.param_count,
            "total_steps": self.plan.total_steps,
            "steps_completed": steps,
            "epochs_completed": steps // self.plan.steps_per_epoch,
            "evals_completed": sum(1 for s in self.eval_steps() if s <= steps),
            "eval_steps": self.plan.total_steps // request.n_evals if request.n_evals else 0,
            "queue_depth": 0,
            "wandb_url": self.wandb_url,
            "early_stopped": False,
            "events": [public(e) for e in self.events],
        }

    def eval_steps(self) -> tuple[int, ...]:
        """The steps after which the validation set is evaluated."""
        return spread(self.plan.total_steps, self.request.n_evals) if self.request.n_evals else ()

    @property
    def total_price_cents(self) -> int:
        """The emulated price in US cents (see catalog.price)."""
        request = self.request
        tokens = request.tokens * request.n_epochs
        return round(100 * price(request.model, tokens, request.method, request.lora))

    def _started_at(self) -> float | None:
        """When the job left the queue, if it did."""
        return next((e["_at"] for e in self.events if e["type"] == "job_start"), None)

    def _progress(self, speed: float) -> dict[str, Any]:
        """Seconds until the job completes, while one can tell."""
        if self.terminal or self.cancel_at is not None or not speed:
            return {"estimate_available": False, "seconds_remaining": 0}
        remaining = (self.plan.t_end - self.synced) / speed
        return {"estimate_available": True, "seconds_remaining": max(0, round(remaining))}
