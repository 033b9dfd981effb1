"""Checkpoint selection: which of a job's checkpoints and final model its eval scored best."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """A tuned model of a job at the step it was saved, with its eval score (None: no score)."""

    model: str
    step: int
    score: float | None


def best(candidates: Iterable[Candidate]) -> dict[str, Any] | None:
    """The highest score as {model, step, score}; ties go to the earlier step (less training)."""
    scored = [c for c in candidates if c.score is not None]
    if not scored:
        return None
    top = min(scored, key=lambda c: (-(c.score or 0.0), c.step))
    return {"model": top.model, "step": top.step, "score": top.score}


def eval_models(base: str, final: str, checkpoints: Iterable[tuple[str, int]]) -> list[str]:
    """Base, then the checkpoints in step order, then the final model (each once)."""
    ordered = [name for name, _ in sorted(checkpoints, key=lambda c: c[1]) if name != final]
    return list(dict.fromkeys([base, *ordered, final]))
