"""`validate_file`: stream a JSONL dataset through every check and build its report."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import cast

import orjson

from ftq.shared.catalog import ModelInfo, get_model
from ftq.shared.datasets.tokens import count_source
from ftq.shared.datasets.validation.dedupe import Deduper
from ftq.shared.datasets.validation.findings import FindingLog
from ftq.shared.datasets.validation.lines import RangeConfig, RangeResult, detect_format
from ftq.shared.datasets.validation.parallel import default_workers, plan, run_ranges
from ftq.shared.datasets.validation.reader import iter_lines
from ftq.shared.datasets.validation.report import (
    MAX_LISTED,
    Format,
    Purpose,
    TokenStats,
    ValidationReport,
)
from ftq.shared.datasets.validation.stats import (
    Tally,
    auto_n_epochs,
    billing_tokens,
    cost_usd,
    distribution,
    histogram,
)

MIN_EXAMPLES, RECOMMENDED_EXAMPLES = 10, 50
SNIFF_OBJECTS, SNIFF_BYTES = 100, 8 << 20
PURPOSES = ("fine-tune", "eval")


@dataclass
class Merged:
    """The whole file's findings and tallies, merged range by range in file order."""

    errors: FindingLog = field(default_factory=lambda: FindingLog(limit=None))
    warnings: FindingLog = field(default_factory=lambda: FindingLog(limit=None))
    tally: Tally = field(default_factory=Tally)
    dedupe: Deduper = field(default_factory=Deduper)
    n_lines: int = 0
    n_examples: int = 0

    def add(self, result: RangeResult) -> None:
        """Fold one range's result in; its lines follow those merged so far."""
        offset = self.n_lines
        self.errors.merge(result.errors, offset)
        self.warnings.merge(result.warnings, offset)
        self.tally.merge(result.tally)
        self.dedupe.add(result.digests, result.digest_lines, offset)
        self.n_lines += result.n_lines
        self.n_examples += result.n_examples


def resolve_model(model: str | None) -> ModelInfo:
    """The catalog entry for `model`, or for the configured default model."""
    if model is None:
        from ftq.shared.settings import get_settings

        model = get_settings().default_model
    return get_model(model)


def validate_file(
    path: Path,
    *,
    model: str | None = None,
    purpose: str = "fine-tune",
    workers: int | None = None,
) -> ValidationReport:
    """Check a JSONL dataset for `model` and `purpose` (fine-tune or eval) and report."""
    started = perf_counter()
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    path = Path(path)
    info = resolve_model(model)
    size = os.path.getsize(path)
    file_format = sniff_format(path)
    config = RangeConfig(str(path), info.encoding, info.context, purpose, file_format, info.vision)
    n_workers = workers or default_workers()
    merged = Merged()
    try:
        for result in run_ranges(config, plan(path, size, n_workers), n_workers):
            merged.add(result)
        _duplicates(merged)
    finally:
        merged.dedupe.close()
    _file_rules(merged, info, purpose, file_format)
    report = _report(merged, info, purpose, file_format, size)
    report.elapsed_seconds = round(perf_counter() - started, 3)
    return report


def sniff_format(path: Path) -> str | None:
    """The format most of the first examples are in (the earliest wins a tie)."""
    counts: Counter[str] = Counter()
    end = min(os.path.getsize(path), SNIFF_BYTES)
    for raw in iter_lines(path, 0, end):
        try:
            obj = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError:
            continue
        found = detect_format(obj) if isinstance(obj, dict) else None
        if found:
            counts[found] += 1
            if counts.total() >= SNIFF_OBJECTS:
                break
    return counts.most_common(1)[0][0] if counts else None


def _duplicates(merged: Merged) -> None:
    """Warn about lines that repeat an earlier line byte for byte."""
    repeats, pairs = merged.dedupe.duplicates(MAX_LISTED)
    for line, first in pairs:
        merged.warnings.add(
            line, "duplicate_example", f"this example repeats line {first} exactly", None
        )
    merged.warnings.count_more("duplicate_example", repeats - len(pairs))


def _file_rules(merged: Merged, info: ModelInfo, purpose: str, fmt: str | None) -> None:
    """Rules about the file as a whole: size, format against model and purpose."""
    errors, n = merged.errors, merged.n_examples
    if n == 0:
        errors.add(None, "empty_file", "the file holds no example: write one JSON object per line")
    elif purpose == "fine-tune" and n < MIN_EXAMPLES:
        errors.add(
            None,
            "too_few_examples",
            f"Training file has {n} example(s), but must have at least {MIN_EXAMPLES} "
            f"examples ({RECOMMENDED_EXAMPLES}-100 recommended)",
        )
    elif purpose == "fine-tune" and n < RECOMMENDED_EXAMPLES:
        merged.warnings.add(
            None,
            "few_examples",
            f"{n} examples: OpenAI recommends at least {RECOMMENDED_EXAMPLES}; "
            "results usually improve with more",
        )
    problem = _format_problem(info, purpose, fmt)
    if problem:
        errors.add(None, "format_unsupported", problem, "model" if purpose == "fine-tune" else None)
    if purpose == "fine-tune" and info.context is None:
        merged.warnings.add(
            None,
            "context_unknown",
            f"OpenAI does not publish {info.name}'s training context, so "
            "example lengths were not checked",
            "model",
        )


def _format_problem(info: ModelInfo, purpose: str, fmt: str | None) -> str | None:
    """Why a file of format `fmt` cannot serve `purpose` on `info` (None if it can)."""
    if fmt is None or fmt == "evals":
        return None
    if purpose == "eval":
        if fmt == "chat":
            return None
        return (
            f"a {fmt} file cannot be an eval dataset: use chat examples that end with the "
            "reference assistant turn, or evals records {input, ideal}"
        )
    if fmt == "completion" and info.format == "chat":
        return (
            f"prompt/completion examples train only babbage-002 and davinci-002; {info.name} "
            "needs chat examples (messages)"
        )
    if fmt != "completion" and info.format == "completion":
        return f"{info.name} trains on prompt/completion examples, not {fmt} examples"
    if fmt == "preference" and not info.supports("dpo"):
        return (
            f"preference (DPO) examples need a model that supports DPO; {info.name} "
            "supports supervised fine-tuning only"
        )
    return None


def _report(
    merged: Merged, info: ModelInfo, purpose: str, fmt: str | None, size: int
) -> ValidationReport:
    """Assemble the report from merged results."""
    totals = merged.tally.total
    training = purpose == "fine-tune"
    billing = billing_tokens(totals, info.context)
    epochs = auto_n_epochs(merged.n_examples) if training else None
    return ValidationReport(
        ok=merged.errors.total == 0,
        purpose=cast(Purpose, purpose),
        format=cast(Format | None, fmt),
        model=info.name,
        encoding=info.encoding,
        tokens_exact=info.exact_tokens,
        token_count_source=count_source(info),
        context_limit=info.context,
        n_bytes=size,
        n_lines=merged.n_lines,
        n_examples=merged.n_examples,
        errors=merged.errors.summary(),
        warnings=merged.warnings.summary(),
        tokens=TokenStats(
            total=distribution(totals),
            assistant=distribution(merged.tally.assistant),
            messages=distribution(merged.tally.messages),
        ),
        histogram=histogram(totals),
        n_examples_over_context=merged.errors.counts.get("example_too_long", 0),
        billing_tokens_per_epoch=billing,
        auto_n_epochs=epochs,
        price_per_1m_tokens=info.price_per_1m,
        estimated_cost_usd=cost_usd(billing, epochs, info.price_per_1m) if epochs else None,
    )
