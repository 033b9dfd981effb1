"""`validate_file`: stream a JSONL dataset through every check and build its report."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import cast

import orjson

from ftq.shared.catalog import ModelInfo, configured_default_model, get_model
from ftq.shared.datasets.tokens import count_source
from ftq.shared.datasets.validation.dedupe import Deduper
from ftq.shared.datasets.validation.findings import FindingLog
from ftq.shared.datasets.validation.lines import RangeConfig, RangeResult, detect_format
from ftq.shared.datasets.validation.parallel import _pool, default_workers, plan, run_ranges
from ftq.shared.datasets.validation.quality import (
    QualityConfig,
    QualityIndex,
    QualityPart,
    QualityPass,
    quality_warnings,
    validate_range_quality,
)
from ftq.shared.datasets.validation.reader import ByteRange, iter_lines
from ftq.shared.datasets.validation.report import (
    MAX_LISTED,
    Format,
    Overlap,
    Purpose,
    Quality,
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

        model = configured_default_model(get_settings())
    return get_model(model)


def validate_file(
    path: Path,
    *,
    model: str | None = None,
    purpose: str = "fine-tune",
    workers: int | None = None,
    quality: bool = True,
) -> ValidationReport:
    """Check a JSONL dataset for `model` and `purpose` (fine-tune or eval) and report.

    With `quality` (the default) the same pass also fills the report's `quality` section.
    """
    report, index = _validate(
        path, model, purpose, workers, QualityConfig.from_settings() if quality else None
    )
    if index is not None:
        index.close()
    return report


def validate_pair(
    train: Path,
    valid: Path,
    *,
    model: str | None = None,
    workers: int | None = None,
) -> tuple[ValidationReport, ValidationReport]:
    """Validate a training file and its validation file; the training report's quality section
    also holds their overlap (exact and near), by validation line."""
    config = QualityConfig.from_settings()
    train_report, train_index = _validate(train, model, "fine-tune", workers, config)
    try:
        valid_report, valid_index = _validate(valid, model, "fine-tune", workers, config)
        try:
            assert train_index is not None and valid_index is not None
            overlap = train_index.overlap(valid_index)
        finally:
            if valid_index is not None:
                valid_index.close()
    finally:
        if train_index is not None:
            train_index.close()
    if train_report.quality is not None:
        train_report.quality.overlap = overlap
        train_report.quality.warnings = quality_warnings(train_report.quality)
    return train_report, valid_report


def overlap_files(train: Path, valid: Path) -> Overlap:
    """The validation examples that repeat training ones, by a quality-only pass over both
    files (no tokenizer): what a job with both datasets checks on creation."""
    config = QualityConfig.from_settings()
    train_index = _quality_only(Path(train), config)
    try:
        valid_index = _quality_only(Path(valid), config)
        try:
            return train_index.overlap(valid_index)
        finally:
            valid_index.close()
    finally:
        train_index.close()


def _quality_only(path: Path, config: QualityConfig, chunk: int = 10_000) -> QualityIndex:
    """A file's quality index from parsing alone, folded in chunks so memory stays flat."""
    fmt = sniff_format(path)
    index = QualityIndex(config)
    feed = QualityPass(config, fmt)
    try:
        for ln, raw in enumerate(iter_lines(path), 1):
            try:
                obj = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
            except orjson.JSONDecodeError:
                continue
            found = (detect_format(obj) or fmt) if type(obj) is dict else None
            if found:
                feed.example(obj, found, ln, None)
                if feed.count >= chunk:
                    index.add(feed.finish(), 0)
                    feed = QualityPass(config, fmt)
        index.add(feed.finish(), 0)
    except BaseException:
        index.close()
        raise
    return index


def _validate(
    path: Path,
    model: str | None,
    purpose: str,
    workers: int | None,
    quality: QualityConfig | None,
) -> tuple[ValidationReport, QualityIndex | None]:
    """The report and, with `quality`, the file's quality index (the caller closes it)."""
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
    index = QualityIndex(quality) if quality is not None else None
    section: Quality | None = None
    try:
        ranges = plan(path, size, n_workers)
        if index is None or quality is None:
            for result in run_ranges(config, ranges, n_workers):
                merged.add(result)
        else:
            for result, part in _run_quality_ranges(config, quality, ranges, n_workers):
                index.add(part, merged.n_lines)
                merged.add(result)
            section = index.quality()
        _duplicates(merged)
    except BaseException:
        if index is not None:
            index.close()
        raise
    finally:
        merged.dedupe.close()
    _file_rules(merged, info, purpose, file_format)
    report = _report(merged, info, purpose, file_format, size)
    report.quality = section
    report.elapsed_seconds = round(perf_counter() - started, 3)
    return report, index


def _run_quality_ranges(
    config: RangeConfig, quality: QualityConfig, ranges: list[ByteRange], workers: int
) -> Iterator[tuple[RangeResult, QualityPart]]:
    """`run_ranges` with the quality pass: results of every range, in file order."""
    if workers <= 1 or len(ranges) <= 1 or multiprocessing.current_process().daemon:
        for rng in ranges:
            yield validate_range_quality(config, rng, quality)
        return
    with _pool(config.encoding, min(workers, len(ranges))) as pool:
        futures = [pool.submit(validate_range_quality, config, rng, quality) for rng in ranges]
        for future in futures:
            yield future.result()


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
