"""Training diagnosis: what a job's loss curves say, and the next run that should do better.

A pure function over a job's metric points (any provider: OpenAI, Azure, Together, the emulator,
the local trainer), recomputed by sync each time new steps are stored and once more, `final`,
when the job finishes. Each finding names its kind, its evidence (steps and values), a concrete
next run in the fine-tuning guide's terms (`n_epochs`, `learning_rate_multiplier`, `batch_size`)
and a sentence. The rules and their thresholds (`Thresholds`) are documented in
docs/diagnosis.md:

- `diverging`: a loss is NaN or infinite, or the smoothed training loss ends above its start and
  at least `diverge_ratio` times its minimum -> halve the learning-rate multiplier.
- `not_converging`: the smoothed training loss ends within `converge_drop` of where it started
  -> raise the learning-rate multiplier (x `lr_up`).
- `underfitting`: the training loss ends high (>= `underfit_loss`) and flat over the second half
  (fell < `flat_drop` there), or the token accuracy ends below `underfit_accuracy` while flat
  -> `epochs_up` more epochs.
- `overfitting`: the smoothed validation loss passed its minimum and rose at least
  `overfit_rise` above it over `overfit_evals` evaluations while the training loss fell, or the
  validation-training gap widened to `gap_min` and `gap_growth` times what it was a third of the
  way in -> one epoch fewer (two when the minimum came before half the run).
- `noisy`: the step-to-step deviation of the training loss around its smoothed trend has a
  relative standard deviation of `noise_std` or more -> twice the batch size (or, when the batch
  size is "auto", half the learning-rate multiplier).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("diverging", "not_converging", "underfitting", "overfitting", "noisy")
# Stand-ins for "auto" hyperparameters when a suggestion must be a number.
AUTO_EPOCHS = 3
AUTO_LR_MULTIPLIER = 1.0
MAX_EVIDENCE = 12
MAX_EPOCHS = 50  # ftq's n_epochs bound (schemas.Hyperparameters)


@dataclass(frozen=True)
class Thresholds:
    """The rules' thresholds (docs/diagnosis.md says why each has its value)."""

    min_points: int = 8  # training points before any curve-shape rule speaks (NaN speaks at once)
    diverge_ratio: float = 1.5  # end / minimum of the smoothed training loss
    converge_drop: float = 0.05  # the smoothed training loss must fall more than 5 % overall
    underfit_loss: float = 1.0  # a training loss this high at the end is "high"
    underfit_accuracy: float = 0.6  # a mean token accuracy below this at the end is "low"
    flat_drop: float = 0.05  # less than 5 % fall over the second half is "flat"
    overfit_evals: int = 3  # evaluations after the validation minimum
    overfit_rise: float = 0.1  # the smoothed validation loss ends 10 % above its minimum
    gap_min: float = 0.2  # a validation - training gap this wide (loss units) ...
    gap_growth: float = 2.0  # ... and this many times the gap a third of the way in
    noise_std: float = 0.2  # relative std of the training loss around its trend
    lr_down: float = 0.5
    lr_up: float = 2.0
    epochs_up: int = 2
    max_batch_size: int = 256


DEFAULT = Thresholds()


@dataclass(frozen=True)
class Point:
    """One step's metrics (None where the provider reported nothing)."""

    step: int
    train_loss: float | None = None
    valid_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_mean_token_accuracy: float | None = None
    total_steps: int | None = None


def point_of(row: Any) -> Point:
    """A Point from anything with the metric fields as attributes (a JobMetric row)."""
    return Point(
        step=int(row.step),
        train_loss=row.train_loss,
        valid_loss=row.valid_loss,
        train_mean_token_accuracy=row.train_mean_token_accuracy,
        valid_mean_token_accuracy=row.valid_mean_token_accuracy,
        total_steps=row.total_steps,
    )


def diagnose(
    points: Iterable[Point],
    *,
    final: bool = False,
    hyperparameters: Mapping[str, Any] | None = None,
    auto_epochs: int | None = None,
    thresholds: Thresholds = DEFAULT,
) -> dict[str, Any]:
    """`{"final", "steps", "findings": [{kind, evidence: {steps, values}, suggestion, message}]}`.

    `hyperparameters` are the job's (numbers or "auto"); suggestions start from them, taking
    "auto" as `auto_epochs` (the dataset's auto epoch count, else 3) and a multiplier of 1.0.
    """
    ordered = sorted(points, key=lambda p: p.step)
    current = _current(hyperparameters or {}, auto_epochs)
    findings: list[dict[str, Any]] = []
    bad = _non_finite(ordered)
    train = [(p.step, v) for p in ordered if (v := p.train_loss) is not None and math.isfinite(v)]
    if bad:
        findings.append(_diverging_nan(bad, current, thresholds))
    elif len(train) >= thresholds.min_points:
        shape = _training_shape(train, ordered, current, thresholds)
        if shape:
            findings.append(shape)
    if len(train) >= thresholds.min_points:
        for rule in (_overfitting, _noisy):
            found = rule(train, ordered, current, thresholds)
            if found:
                findings.append(found)
    total = next((p.total_steps for p in reversed(ordered) if p.total_steps), None)
    return {
        "final": final,
        "steps": len(ordered),
        "total_steps": total,
        "findings": findings,
    }


def kinds(diagnosis: Mapping[str, Any] | None) -> list[str]:
    """The kinds a stored diagnosis found."""
    return [f["kind"] for f in (diagnosis or {}).get("findings", [])]


def suggested(diagnosis: Mapping[str, Any] | None) -> dict[str, Any]:
    """The next run's hyperparameters: every finding's suggestion, the first one winning a tie."""
    merged: dict[str, Any] = {}
    for finding in (diagnosis or {}).get("findings", []):
        for name, value in (finding.get("suggestion") or {}).items():
            merged.setdefault(name, value)
    return merged


def _current(hyper: Mapping[str, Any], auto_epochs: int | None) -> dict[str, Any]:
    epochs = hyper.get("n_epochs", "auto")
    lr = hyper.get("learning_rate_multiplier", "auto")
    batch = hyper.get("batch_size", "auto")
    return {
        "n_epochs": int(epochs) if epochs != "auto" else (auto_epochs or AUTO_EPOCHS),
        "learning_rate_multiplier": float(lr) if lr != "auto" else AUTO_LR_MULTIPLIER,
        "batch_size": int(batch) if batch != "auto" else None,
    }


def _non_finite(points: Sequence[Point]) -> list[int]:
    return [
        p.step
        for p in points
        if any(v is not None and not math.isfinite(v) for v in (p.train_loss, p.valid_loss))
    ]


def _smooth(values: Sequence[float]) -> list[float]:
    """A centred rolling mean over about a tenth of the points (at least 3)."""
    half = max(1, len(values) // 20)
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out


def _evidence(pairs: Sequence[tuple[int, float]]) -> dict[str, list[Any]]:
    if len(pairs) > MAX_EVIDENCE:
        stride = math.ceil(len(pairs) / MAX_EVIDENCE)
        pairs = [*pairs[::stride][: MAX_EVIDENCE - 1], pairs[-1]]
    return {"steps": [s for s, _ in pairs], "values": [round(v, 5) for _, v in pairs]}


def _finding(
    kind: str, evidence: dict[str, list[Any]], suggestion: dict[str, Any], message: str
) -> dict[str, Any]:
    return {"kind": kind, "evidence": evidence, "suggestion": suggestion, "message": message}


def _lr(current: Mapping[str, Any], factor: float) -> dict[str, Any]:
    return {"learning_rate_multiplier": round(current["learning_rate_multiplier"] * factor, 4)}


def _diverging_nan(steps: list[int], current: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    suggestion = _lr(current, t.lr_down)
    shown = steps[:MAX_EVIDENCE]
    return _finding(
        "diverging",
        {"steps": shown, "values": [None] * len(shown)},
        suggestion,
        f"the loss is NaN or infinite from step {steps[0]}: training diverged; retry with "
        f"learning_rate_multiplier {suggestion['learning_rate_multiplier']:g}",
    )


def _training_shape(
    train: list[tuple[int, float]],
    points: Sequence[Point],
    current: dict[str, Any],
    t: Thresholds,
) -> dict[str, Any] | None:
    """diverging (rising), not_converging (no fall) or underfitting (high and flat)."""
    steps = [s for s, _ in train]
    smooth = _smooth([v for _, v in train])
    start, end, low = smooth[0], smooth[-1], min(smooth)
    at_low = smooth.index(low)
    if end > start and end >= t.diverge_ratio * low:
        suggestion = _lr(current, t.lr_down)
        if current["batch_size"]:
            suggestion["batch_size"] = min(current["batch_size"] * 2, t.max_batch_size)
        pairs = [(steps[0], start), (steps[at_low], low), (steps[-1], end)]
        return _finding(
            "diverging",
            _evidence(pairs),
            suggestion,
            f"the training loss fell to {low:.3g} at step {steps[at_low]} then rose to "
            f"{end:.3g} at step {steps[-1]}: lower the learning rate (multiplier "
            f"{suggestion['learning_rate_multiplier']:g})",
        )
    if end >= start * (1 - t.converge_drop):
        suggestion = _lr(current, t.lr_up)
        return _finding(
            "not_converging",
            _evidence([(steps[0], start), (steps[-1], end)]),
            suggestion,
            f"the training loss went from {start:.3g} to {end:.3g} over {len(train)} steps: "
            f"raise the learning rate (multiplier {suggestion['learning_rate_multiplier']:g})",
        )
    half = len(smooth) // 2
    flat = smooth[-1] >= smooth[half] * (1 - t.flat_drop)
    accuracy = [
        a for p in points if (a := p.train_mean_token_accuracy) is not None and math.isfinite(a)
    ]
    tail_accuracy = statistics.fmean(accuracy[-max(1, len(accuracy) // 4) :]) if accuracy else None
    low_accuracy = tail_accuracy is not None and tail_accuracy < t.underfit_accuracy
    high_loss = end >= t.underfit_loss
    if flat and (high_loss if tail_accuracy is None else (high_loss or low_accuracy)):
        epochs = min(current["n_epochs"] + t.epochs_up, MAX_EPOCHS)
        accuracy_note = f", token accuracy {tail_accuracy:.2f}" if tail_accuracy else ""
        return _finding(
            "underfitting",
            _evidence([(steps[0], start), (steps[half], smooth[half]), (steps[-1], end)]),
            {"n_epochs": epochs},
            f"the training loss stays at {end:.3g} over the second half{accuracy_note}: the "
            f"model does not follow the training data; train {epochs} epochs",
        )
    return None


def _overfitting(
    train: list[tuple[int, float]],
    points: Sequence[Point],
    current: dict[str, Any],
    t: Thresholds,
) -> dict[str, Any] | None:
    valid = [(p.step, v) for p in points if (v := p.valid_loss) is not None and math.isfinite(v)]
    if len(valid) < t.overfit_evals + 2:
        return None
    v_steps = [s for s, _ in valid]
    v_smooth = _smooth([v for _, v in valid])
    low = min(v_smooth)
    at = v_smooth.index(low)
    t_smooth = _smooth([v for _, v in train])
    t_steps = [s for s, _ in train]
    train_at = _value_at(t_steps, t_smooth, v_steps[at])
    train_falls = t_smooth[-1] < train_at * (1 - t.flat_drop)
    after = v_smooth[at + 1 :]
    rising = len(after) >= t.overfit_evals and all(
        v >= low * (1 + t.overfit_rise) for v in after[-t.overfit_evals :]
    )
    total = max(t_steps[-1], next((p.total_steps for p in points if p.total_steps), 0) or 0)
    epochs_down = 2 if v_steps[at] < total / 2 else 1
    epochs = max(1, current["n_epochs"] - epochs_down)
    if rising and train_falls:
        return _finding(
            "overfitting",
            _evidence([(v_steps[at], low), *zip(v_steps[at + 1 :], after, strict=True)]),
            {"n_epochs": epochs},
            f"the validation loss was lowest ({low:.3g}) at step {v_steps[at]} and rose to "
            f"{v_smooth[-1]:.3g} while the training loss kept falling: train {epochs} epochs",
        )
    # Gaps are averaged over the last quarter of evaluations: one low training point (noise)
    # at the very end must not read as a widening gap.
    gaps = [v - _value_at(t_steps, t_smooth, s) for s, v in zip(v_steps, v_smooth, strict=True)]
    tail = max(3, len(gaps) // 4)
    gap_end = statistics.fmean(gaps[-tail:])
    third = len(v_smooth) // 3
    gap_third = gaps[third]
    if train_falls and gap_end >= t.gap_min and gap_end >= t.gap_growth * max(gap_third, 0.0):
        return _finding(
            "overfitting",
            {
                "steps": [v_steps[third], v_steps[-1]],
                "values": [round(gap_third, 5), round(gap_end, 5)],
            },
            {"n_epochs": epochs},
            f"the gap between validation and training loss widened from {gap_third:.3g} at step "
            f"{v_steps[third]} to {gap_end:.3g}: train {epochs} epochs",
        )
    return None


def _value_at(steps: Sequence[int], values: Sequence[float], step: int) -> float:
    """The value at the last step at or before `step` (the first one before any)."""
    found = values[0]
    for s, v in zip(steps, values, strict=True):
        if s > step:
            break
        found = v
    return found


def _noisy(
    train: list[tuple[int, float]],
    points: Sequence[Point],
    current: dict[str, Any],
    t: Thresholds,
) -> dict[str, Any] | None:
    values = [v for _, v in train]
    smooth = _smooth(values)
    relative = [(v - s) / s for v, s in zip(values, smooth, strict=True) if s > 0]
    if len(relative) < t.min_points:
        return None
    spread = statistics.pstdev(relative)
    if spread < t.noise_std:
        return None
    if current["batch_size"]:
        suggestion: dict[str, Any] = {
            "batch_size": min(current["batch_size"] * 2, t.max_batch_size)
        }
        advice = f"batch_size {suggestion['batch_size']}"
    else:
        suggestion = _lr(current, t.lr_down)
        advice = f"learning_rate_multiplier {suggestion['learning_rate_multiplier']:g}"
    worst = sorted(range(len(values)), key=lambda i: abs(values[i] - smooth[i]), reverse=True)[
        :MAX_EVIDENCE
    ]
    pairs = [train[i] for i in sorted(worst)]
    return _finding(
        "noisy",
        _evidence(pairs),
        suggestion,
        f"the training loss jumps {spread:.0%} around its trend from step to step: retry with "
        f"{advice}",
    )
