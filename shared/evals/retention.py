"""Retention checks: did fine-tuning cost the model what it knew before?

A job's `eval.retention` scores the base and the tuned model on a general-skills suite that ships
with ftq (`retention_general.jsonl` beside this module: multiple-choice MMLU and BIG-Bench Hard
items taken from the lm-eval wheel by `retention_build`, its first line the suite's header), or on
a team's own dataset (`eval.retention_dataset`). It is an ordinary eval of the job; the shipped
suite needs no Dataset row, because an eval keeps its dataset id as a record of the source and
copies its items in (the id `SUITE_ID` tells it to read them from here). `max_items` draws a
sample seeded with `SEED`, so two evals of one job's models score the same items.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ftq.shared.evals import stats

SUITE_NAME = "ftq-general-v1"
SUITE_ID = "ftq:retention-general-v1"
SUITE_PATH = Path(__file__).with_name("retention_general.jsonl")
SEED = 20261206


@dataclass(frozen=True)
class Suite:
    """The shipped suite: where it comes from and its records (evals format, one per line)."""

    name: str
    source: str
    package: str
    version: str
    licence: str
    grader: str
    records: tuple[bytes, ...]

    def info(self) -> dict[str, Any]:
        """What a job's `retention.suite` says about it."""
        return {
            "name": self.name,
            "source": self.source,
            "package": f"{self.package} {self.version}",
            "licence": self.licence,
        }


@cache
def load_suite() -> Suite:
    """The shipped suite, read once from the package data."""
    header, *records = SUITE_PATH.read_bytes().splitlines()
    meta = json.loads(header)["suite"]
    return Suite(
        name=meta["name"],
        source=meta["source"],
        package=meta["package"],
        version=meta["version"],
        licence=meta["licence"],
        grader=meta["grader"],
        records=tuple(r for r in records if r.strip()),
    )


def is_suite(dataset_id: str) -> bool:
    """Whether an eval's dataset id names the shipped suite."""
    return dataset_id == SUITE_ID


def sample(records: tuple[bytes, ...], max_items: int | None, seed: int = SEED) -> list[bytes]:
    """`max_items` records drawn with `seed`, in suite order (all of them when None or more)."""
    if max_items is None or max_items >= len(records):
        return list(records)
    picked = sorted(random.Random(seed).sample(range(len(records)), max_items))
    return [records[i] for i in picked]


def team_suite_info(dataset_id: str, filename: str | None) -> dict[str, Any]:
    """The `suite` of a retention check on a team's own dataset."""
    return {"name": filename or dataset_id, "source": f"team dataset {dataset_id}", "licence": None}


def queued(eval_id: str, suite: dict[str, Any]) -> dict[str, Any]:
    """A job's `retention` while its eval runs."""
    return {"status": "queued", "eval_id": eval_id, "suite": suite}


def failed(pending: dict[str, Any], message: str) -> dict[str, Any]:
    """A job's `retention` when its eval failed (no scores)."""
    return {**pending, "status": "failed", "error": message, "warning": None}


def result(
    pending: dict[str, Any],
    base: Mapping[int, float],
    tuned: Mapping[int, float],
    warn_drop: float,
) -> dict[str, Any]:
    """Base and tuned scores on the items both answered, the paired delta and its interval."""
    found = stats.compare(base, tuned)
    shared = sorted(set(base) & set(tuned))
    base_score = _mean([base[i] for i in shared])
    tuned_score = _mean([tuned[i] for i in shared])
    delta = None if found.difference is None else round(found.difference, 6)
    return {
        **pending,
        "status": "completed",
        "base_score": base_score,
        "tuned_score": tuned_score,
        "delta": delta,
        "interval": list(found.interval) if found.interval else None,
        "items": found.n,
        "warning": _warning(base_score, tuned_score, delta, found.interval, warn_drop),
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def _warning(
    base: float | None,
    tuned: float | None,
    delta: float | None,
    interval: tuple[float, float] | None,
    warn_drop: float,
) -> str | None:
    if base is None or tuned is None or delta is None or delta >= -warn_drop:
        return None
    sure = (
        "the 95% interval excludes no change"
        if interval and interval[1] < 0
        else "within noise for this many items"
    )
    return (
        f"the tuned model lost {-delta:.3f} on general skills (base {base:.3f}, tuned "
        f"{tuned:.3f}; more than the {warn_drop:.3f} allowed; {sure}): fine-tuning may have "
        "erased what the model knew; mix general examples into the training data or train less"
    )
