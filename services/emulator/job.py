"""One emulated fine-tuning job (a test double of OpenAI: it walks a timeline, trains nothing).

Progress is computed lazily: `anchor_progress + (now - anchor_real) * speed` emulated seconds,
frozen while paused. Every read calls `sync`, which materialises the planned events whose time
has come; no background thread is needed, so the app also works mounted in another event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ftq.services.emulator.datafile import FileFailure
from ftq.services.emulator.errors import bad_request
from ftq.services.emulator.ids import stable_id
from ftq.services.emulator.plan import Plan, Planned, curve_of, full_valid_metrics, step_metrics


@dataclass(frozen=True)
class JobSpec:
    """A validated create request."""

    model: str
    base_model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int | None
    metadata: dict[str, str] | None
    integrations: list[dict[str, Any]] | None
    method_type: str
    method_extra: dict[str, Any]
    hyperparameters: dict[str, Any]


@dataclass
class Job:
    """A job's fixed plan plus what has been observed of it so far."""

    # Which API serves the job: OpenAI routes never see a Together job (together/job.py).
    api: ClassVar[str] = "openai"
    id: str
    spec: JobSpec
    created_real: float
    organization_id: str
    seed: int
    plan: Plan
    failure: FileFailure | None
    resolved: dict[str, Any]
    model_name: str
    tokens_per_epoch: int
    anchor_real: float
    anchor_progress: float = 0.0
    paused: bool = False
    terminal: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    next_index: int = 0
    synced: float = 0.0
    error: dict[str, Any] | None = None
    finished_at: int | None = None
    result_files: list[str] = field(default_factory=list)
    trained_tokens: int | None = None

    @property
    def curve(self) -> str:
        """The loss-curve shape the job asked for (metadata `emulator_curve`; plan.CURVES)."""
        return curve_of(self.spec.metadata)

    def progress(self, now: float, speed: float) -> float:
        """Emulated seconds since creation, not counting paused time."""
        if self.paused:
            return self.anchor_progress
        return self.anchor_progress + max(0.0, now - self.anchor_real) * speed

    @property
    def status(self) -> str:
        """OpenAI's status string (plus `paused`)."""
        if self.terminal:
            return self.terminal
        if self.paused:
            return "paused"
        if self.synced < self.plan.t_queued:
            return "validating_files"
        return "queued" if self.synced < self.plan.t_running else "running"

    def sync(
        self, now: float, speed: float, fail_with: dict[str, Any] | None, lazy: bool = False
    ) -> None:
        """Materialise everything due by `now`; with `fail_with`, fail once running.

        `lazy` skips the work unless the status would move: listing 1,000 running jobs then
        costs no per-step events, which are materialised when the job itself is read.
        """
        if self.terminal:
            return
        progress = self.progress(now, speed)
        failing = fail_with is not None and not self.paused and progress >= self.plan.t_running
        if lazy and not failing and not self._milestone_between(self.synced, progress):
            return
        limit = (
            min(progress, max(self.plan.first_step_offset, self.synced)) if failing else progress
        )
        self._materialise(limit, now, speed)
        self.synced = max(self.synced, limit)
        if failing and not self.terminal and fail_with is not None:
            self.fail(fail_with, now)

    def _milestone_between(self, start: float, end: float) -> bool:
        """Whether a status change (queued, running, finished) lies in (start, end]."""
        plan = self.plan
        return any(start < offset <= end for offset in (plan.t_queued, plan.t_running, plan.t_end))

    def _materialise(self, limit: float, now: float, speed: float) -> None:
        """Apply planned events up to emulated time `limit`."""
        events = self.plan.events
        while self.next_index < len(events) and not self.terminal:
            planned = events[self.next_index]
            if planned.offset > limit:
                return
            self.next_index += 1
            self._apply(planned, self._when(planned.offset, now, speed))

    def _when(self, offset: float, now: float, speed: float) -> float:
        """The real time at which emulated `offset` was reached."""
        at = self.anchor_real + (offset - self.anchor_progress) / speed if speed else now
        earliest = self.events[-1]["_at"] if self.events else self.created_real
        return min(max(at, earliest), now)

    def _apply(self, planned: Planned, when: float) -> None:
        """Record one planned event."""
        spec, kind = self.spec, planned.kind
        messages = {
            "created": f"Created fine-tuning job: {self.id}",
            "validating_training": f"Validating training file: {spec.training_file}",
            "validating_validation": f"Validating validation file: {spec.validation_file}",
            "validated": "Files validated, moving job to queued state",
            "started": "Fine-tuning job started",
        }
        if kind in messages:
            self.add_event(when, messages[kind])
        elif kind == "metrics":
            self._metrics_event(planned.step, when)
        elif kind == "checkpoint":
            name = f"{self.model_name}:ckpt-step-{planned.step}"
            self.add_event(
                when, f"Checkpoint created at step {planned.step} with Snapshot ID: {name}"
            )
            self._checkpoint(planned.step, when, name)
        else:
            self._apply_ending(kind, when)

    def _apply_ending(self, kind: str, when: float) -> None:
        """The last events: model published, job succeeded, or validation failed."""
        if kind == "model_created":
            self.add_event(when, f"New fine-tuned model created: {self.model_name}")
            self._checkpoint(self.plan.total_steps, when, self.model_name)
        elif kind == "completed":
            self.add_event(when, "The job has successfully completed")
            self.terminal, self.finished_at = "succeeded", int(when)
            self.trained_tokens = self.tokens_per_epoch * int(self.resolved["n_epochs"])
        elif kind == "validation_failed" and self.failure:
            failure = self.failure
            self.add_event(when, failure.message, level="error")
            self.terminal = "failed"
            self.error = {"code": failure.code, "message": failure.message, "param": failure.param}

    def _metrics(self, step: int) -> dict[str, Any]:
        """Metrics of one step, with whole-validation figures at epoch ends."""
        has_valid = self.spec.validation_file is not None
        metrics: dict[str, Any] = step_metrics(
            self.id, step, self.plan.total_steps, has_valid, self.curve
        )
        if step % self.plan.steps_per_epoch == 0:
            metrics.update(full_valid_metrics(metrics))
        return metrics

    def _metrics_event(self, step: int, when: float) -> None:
        """One `metrics` event."""
        data = {**self._metrics(step), "total_steps": self.plan.total_steps}
        message = f"Step {step}/{self.plan.total_steps}: training loss={data['train_loss']:.2f}"
        if "valid_loss" in data:
            message += f", validation loss={data['valid_loss']:.2f}"
        self.add_event(when, message, type_="metrics", data=data)

    def _checkpoint(self, step: int, when: float, name: str) -> None:
        """A checkpoint object (newest first in listings)."""
        self.checkpoints.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": stable_id("ftckpt_", 24, self.id, step),
                "created_at": int(when),
                "fine_tuned_model_checkpoint": name,
                "fine_tuning_job_id": self.id,
                "step_number": step,
                "metrics": self._metrics(step),
            }
        )

    def add_event(
        self,
        when: float,
        message: str,
        *,
        level: str = "info",
        type_: str = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append an event; `_at` keeps the exact time and is not sent."""
        event = {
            "object": "fine_tuning.job.event",
            "id": stable_id("ftevent-", 24, self.id, len(self.events)),
            "created_at": int(when),
            "level": level,
            "message": message,
            "data": data or {},
            "type": type_,
            "_at": when,
        }
        self.events.append(event)

    def fail(self, failure: dict[str, Any], now: float) -> None:
        """Fail a running job with an injected error."""
        self.add_event(now, failure["message"], level="error")
        self.terminal, self.paused, self.finished_at = "failed", False, int(now)
        self.error = {
            "code": failure["code"],
            "message": failure["message"],
            "param": failure.get("param"),
        }

    def cancel(self, now: float) -> None:
        """Cancel unless already finished."""
        if self.terminal:
            raise bad_request(f"Cannot cancel a job that has already {self.terminal}.", "id")
        self.add_event(now, "Fine-tuning job cancelled")
        self.terminal, self.paused = "cancelled", False

    def pause(self, now: float, speed: float) -> None:
        """Freeze a running job."""
        if self.status != "running":
            raise bad_request(f"Cannot pause a job whose status is {self.status}.", "id")
        self.anchor_progress, self.anchor_real = self.progress(now, speed), now
        self.paused = True
        self.add_event(now, "Fine-tuning job paused")

    def resume(self, now: float) -> None:
        """Unfreeze a paused job."""
        if self.status != "paused":
            raise bad_request(f"Cannot resume a job whose status is {self.status}.", "id")
        self.anchor_real, self.paused = now, False
        self.add_event(now, "Fine-tuning job resumed")

    def reanchor(self, now: float, speed: float, extra: float = 0.0, at_least: float = 0.0) -> None:
        """Restart the progress clock at `now`, jumping `extra` seconds (or to `at_least`)."""
        self.anchor_progress = max(self.progress(now, speed) + extra, at_least)
        self.anchor_real = now

    def offset_of(self, status: str) -> float:
        """The emulated time at which the plan reaches `status` (queued, running, succeeded)."""
        offsets = {
            "queued": self.plan.t_queued,
            "running": self.plan.t_running,
            "succeeded": self.plan.t_end,
        }
        return offsets[status]

    def to_dict(self, speed: float) -> dict[str, Any]:
        """The `fine_tuning.job` object."""
        spec, hyper = self.spec, self._shown_hyperparameters()
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "created_at": int(self.created_real),
            "error": self.error or None,
            "fine_tuned_model": self.model_name if self.terminal == "succeeded" else None,
            "finished_at": self.finished_at,
            "hyperparameters": _top_level_hyper(spec.method_type, hyper),
            "model": spec.model,
            "organization_id": self.organization_id,
            "result_files": list(self.result_files),
            "seed": self.seed,
            "status": self.status,
            "trained_tokens": self.trained_tokens,
            "training_file": spec.training_file,
            "validation_file": spec.validation_file,
            "estimated_finish": self._estimated_finish(speed),
            "integrations": self._integrations(),
            "metadata": spec.metadata,
            "method": {
                "type": spec.method_type,
                spec.method_type: {**spec.method_extra, "hyperparameters": hyper},
            },
            "user_provided_suffix": spec.suffix,
            "usage_metrics": None,
            "shared_with_openai": False,
        }

    def _shown_hyperparameters(self) -> dict[str, Any]:
        """As requested ("auto" kept) until the job runs, then the numbers used."""
        started = self.synced >= self.plan.t_running and not self.plan.fails_validation
        return dict(self.resolved if started else self.spec.hyperparameters)

    def _estimated_finish(self, speed: float) -> int | None:
        """When the planned end will be reached, while the job is queued or running."""
        if self.status not in ("queued", "running") or not speed:
            return None
        return int(self.anchor_real + (self.plan.t_end - self.anchor_progress) / speed)

    def _integrations(self) -> list[dict[str, Any]]:
        """Integrations as OpenAI echoes them (W&B runs are named after the job)."""
        shown = []
        for item in self.spec.integrations or []:
            wandb = {"entity": None, "name": None, **item["wandb"], "run_id": self.id}
            shown.append({"type": "wandb", "wandb": wandb})
        return shown


def _top_level_hyper(method_type: str, hyper: dict[str, Any]) -> dict[str, Any] | None:
    """Top-level `hyperparameters`: the supervised ones; null for DPO (as seen) and RFT."""
    if method_type != "supervised":
        return None
    keys = ("batch_size", "learning_rate_multiplier", "n_epochs")
    return {key: hyper.get(key, "auto") for key in keys}


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event without its private fields."""
    return {key: value for key, value in event.items() if not key.startswith("_")}
