"""The emulated timeline of a fine-tuning job (a test double: nothing is trained).

Timing model, in emulated seconds (real seconds = emulated / speed):
  validating_files 30 s, queued 30 s, then one step every `min(3, 1500 / total_steps)` s,
  then 30 s to publish the model. A job of N examples with auto settings therefore runs
  `90 + min(3 * total_steps, 1500)` emulated seconds, where
  `total_steps = n_epochs * ceil(N / batch_size)`.
  Example: 20 examples -> 5 epochs x 20 steps = 100 steps -> 390 s -> 6.5 s at speed 60,
  0.65 s at speed 600. No job runs longer than 1590 emulated seconds (26.5 s at speed 60).
A file that fails validation fails at the end of validating_files (30 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from ftq.services.emulator.ids import unit_float

VALIDATE_S = 30.0
QUEUE_S = 30.0
STEP_S = 3.0
RUN_CAP_S = 1500.0
PUBLISH_S = 30.0
AUTO_LR_MULTIPLIER = 1.8
AUTO_DPO_BETA = 0.1
KEPT_CHECKPOINTS = 3


class Planned(NamedTuple):
    """One scheduled event: when (emulated seconds after creation), what, at which step."""

    offset: float
    kind: str
    step: int = 0


@dataclass(frozen=True)
class Plan:
    """Everything scheduled for one job, fixed at creation."""

    events: tuple[Planned, ...]
    t_queued: float
    t_running: float
    t_end: float
    total_steps: int
    steps_per_epoch: int
    checkpoint_steps: tuple[int, ...]
    fails_validation: bool

    @property
    def first_step_offset(self) -> float:
        """When the first training step would land."""
        return self.t_running + step_seconds(self.total_steps)


def step_seconds(total_steps: int) -> float:
    """Emulated seconds per step: 3, or less so that all steps fit in RUN_CAP_S."""
    return min(STEP_S, RUN_CAP_S / max(total_steps, 1))


def auto_epochs(n_examples: int) -> int:
    """OpenAI's `auto` epoch rule (OPENAI.md)."""
    n = max(n_examples, 1)
    if n * 3 < 100:
        return min(25, 100 // n)
    if n * 3 > 25_000:
        return max(1, 25_000 // n)
    return 3


def auto_batch_size(n_examples: int) -> int:
    """Emulator rule: about 0.2% of the examples (n // 500), at least 1, at most 256."""
    return max(1, min(256, n_examples // 500))


def resolve_hyperparameters(requested: dict[str, object], n_examples: int, method: str) -> dict:
    """Replace every "auto" with the number the emulated job runs with."""
    resolved = dict(requested)
    autos = {
        "n_epochs": auto_epochs(n_examples),
        "batch_size": auto_batch_size(n_examples),
        "learning_rate_multiplier": AUTO_LR_MULTIPLIER,
    }
    if method == "dpo":
        autos["beta"] = AUTO_DPO_BETA
    for key, value in autos.items():
        if resolved.get(key, "auto") == "auto":
            resolved[key] = value
    return resolved


def build_plan(
    n_examples: int, n_epochs: int, batch_size: int, has_validation: bool, fails: bool
) -> Plan:
    """Schedule the whole job."""
    steps_per_epoch = max(1, math.ceil(n_examples / batch_size))
    total = n_epochs * steps_per_epoch
    kept = tuple(e * steps_per_epoch for e in range(max(1, n_epochs - 2), n_epochs + 1))
    t_running = VALIDATE_S + QUEUE_S
    head = [Planned(0.0, "created"), Planned(0.0, "validating_training")]
    if has_validation:
        head.append(Planned(0.0, "validating_validation"))
    if fails:
        events = (*head, Planned(VALIDATE_S, "validation_failed"))
        return Plan(events, VALIDATE_S, t_running, VALIDATE_S, total, steps_per_epoch, kept, True)
    body = _training_events(t_running, total, kept[:-1])
    t_end = t_running + step_seconds(total) * total + PUBLISH_S
    tail = [Planned(t_end, "model_created", total), Planned(t_end, "completed", total)]
    events = (*head, Planned(VALIDATE_S, "validated"), *body, *tail)
    return Plan(events, VALIDATE_S, t_running, t_end, total, steps_per_epoch, kept, False)


def _training_events(t_running: float, total: int, checkpoints: tuple[int, ...]) -> list[Planned]:
    """The start event, one metrics event per step, and the intermediate checkpoints."""
    events = [Planned(t_running, "started")]
    for step in range(1, total + 1):
        offset = t_running + step_seconds(total) * step
        events.append(Planned(offset, "metrics", step))
        if step in checkpoints:
            events.append(Planned(offset, "checkpoint", step))
    return events


# Curve shapes a job may ask for with metadata `emulator_curve` (README: Curve shapes).
CURVES = ("healthy", "overfit", "underfit", "diverge", "noisy")


def curve_of(metadata: dict[str, str] | None) -> str:
    """The curve shape a job's metadata asks for (`healthy` when none or unknown)."""
    curve = (metadata or {}).get("emulator_curve", "healthy")
    return curve if curve in CURVES else "healthy"


def step_metrics(
    job_id: str, step: int, total: int, with_valid: bool, curve: str = "healthy"
) -> dict[str, float]:
    """Deterministic metrics for one step of one job, shaped as `curve` asks.

    healthy: decreasing with small noise (validation about 8 % above training).
    overfit: training falls to a low floor; validation bottoms out at 35 % of the run, then rises.
    underfit: training stays high (about 1.8) and flat after a short fall; accuracy about 0.45.
    diverge: healthy for the first 30 % of the run, then the loss grows exponentially.
    noisy: the healthy trend with alternating +-35-75 % step-to-step jumps.
    """
    start = 1.2 + 1.2 * unit_float(job_id, "start")
    floor = 0.05 + 0.3 * unit_float(job_id, "floor")
    rate = 3.0 + 2.0 * unit_float(job_id, "rate")
    x = step / max(total, 1)
    trend = floor + (start - floor) * math.exp(-rate * step / max(total, 1))
    valid_trend = trend * 1.08
    noise, valid_noise = 0.16, 0.2
    if curve == "overfit":
        trend = 0.02 + (start - 0.02) * math.exp(-rate * x)
        valid_trend = (floor + (start - floor) * math.exp(-rate * x)) * 1.05 + 1.2 * max(
            0.0, x - 0.35
        )
    elif curve == "underfit":
        trend = 1.8 + 0.8 * math.exp(-12 * x)
        valid_trend, noise, valid_noise = trend * 1.03, 0.04, 0.05
    elif curve == "diverge":
        knee = floor + (start - floor) * math.exp(-rate * 0.3)
        trend = trend if x <= 0.3 else knee * math.exp(4.0 * (x - 0.3))
        valid_trend = trend * 1.08
    jump = unit_float(job_id, step, "noise") - 0.5
    if curve == "noisy":
        # Alternating jumps of 35-75 %: noisy from step to step, with the trend left intact.
        noise, jump = 1.0, (0.35 + 0.4 * (jump + 0.5)) * (1 if step % 2 else -1)
    loss = trend * (1 + noise * jump)
    metrics = {"step": step, "train_loss": round(loss, 5)}
    metrics["train_mean_token_accuracy"] = _accuracy(loss, unit_float(job_id, step, "acc"))
    if with_valid:
        jitter = unit_float(job_id, step, "valid") - 0.5
        if curve == "healthy":  # unchanged since before curve shapes existed
            valid = trend * (1.08 + 0.2 * jitter)
        else:
            valid = valid_trend * (1 + valid_noise * jitter)
        metrics["valid_loss"] = round(valid, 5)
        metrics["valid_mean_token_accuracy"] = _accuracy(valid, unit_float(job_id, step, "vacc"))
    return metrics


def _accuracy(loss: float, noise: float) -> float:
    """A token accuracy that rises as loss falls."""
    return round(min(0.999, max(0.0, 1.0 - 0.3 * loss + 0.03 * (noise - 0.5))), 5)


def full_valid_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Whole-validation-set figures reported at epoch ends (close to the step's valid ones)."""
    if "valid_loss" not in metrics:
        return {}
    return {
        "full_valid_loss": round(metrics["valid_loss"] * 0.98, 5),
        "full_valid_mean_token_accuracy": metrics["valid_mean_token_accuracy"],
    }


def results_csv(job_id: str, total: int, with_valid: bool, curve: str = "healthy") -> str:
    """The result file: one row per step, empty validation cells when none ran."""
    rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for step in range(1, total + 1):
        m = step_metrics(job_id, step, total, with_valid, curve)
        valid = f"{m['valid_loss']},{m['valid_mean_token_accuracy']}" if with_valid else ","
        rows.append(f"{step},{m['train_loss']},{m['train_mean_token_accuracy']},{valid}")
    return "\n".join(rows) + "\n"
