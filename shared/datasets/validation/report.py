"""The dataset report: the object `ftq validate --json` prints and the API returns as `report`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Format = Literal["chat", "preference", "completion", "evals"]
Purpose = Literal["fine-tune", "eval"]
MAX_LISTED = 100


class Finding(BaseModel):
    """One problem: the 1-based line (None for the whole file), a stable code, what to do."""

    line: int | None
    code: str
    message: str
    param: str | None = None


class Findings(BaseModel):
    """All findings of one severity: counts by code and the first 100 in line order."""

    total: int = 0
    by_code: dict[str, int] = Field(default_factory=dict)
    items: list[Finding] = Field(default_factory=list)
    truncated: bool = False


class Distribution(BaseModel):
    """Summary of one per-example quantity (None when no example could be counted)."""

    count: int = 0
    sum: int = 0
    min: int | None = None
    max: int | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None


class TokenStats(BaseModel):
    """Per-example token and message counts."""

    total: Distribution = Field(default_factory=Distribution)
    assistant: Distribution = Field(default_factory=Distribution)
    messages: Distribution = Field(default_factory=Distribution)


class Histogram(BaseModel):
    """Examples by total tokens: `counts[i]` examples have `edges[i] <= tokens < edges[i + 1]`."""

    metric: Literal["total_tokens"] = "total_tokens"
    edges: list[int] = Field(default_factory=list)
    counts: list[int] = Field(default_factory=list)


class QualityCheck(BaseModel):
    """One quality check: how many examples it concerns and the first lines (1-based).

    For duplicates, conflicts and overlap, `matches[i]` is the earlier (or training) line that
    `lines[i]` repeats or contradicts.
    """

    count: int = 0
    lines: list[int] = Field(default_factory=list)
    matches: list[int] = Field(default_factory=list)
    truncated: bool = False


class LengthOutliers(QualityCheck):
    """Examples whose token count lies over `k` median absolute deviations from the median."""

    k: float = 6.0
    median_tokens: float | None = None
    mad_tokens: float | None = None
    low: float | None = None
    high: float | None = None


class AnswerBalance(BaseModel):
    """Counts of the final answers when they look like class labels (short, few distinct)."""

    classification_like: bool = False
    n_labels: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    majority: str | None = None
    majority_share: float | None = None
    threshold: float | None = None
    imbalanced: bool = False


class Diversity(BaseModel):
    """Distinct word n-grams over all word n-grams, of the prompts and of the answers."""

    ngram: int = 3
    prompt_ngram_share: float | None = None
    answer_ngram_share: float | None = None


class Overlap(BaseModel):
    """Validation examples that repeat training ones: `lines` are the validation file's lines,
    `matches` the training file's."""

    n_validation_examples: int = 0
    exact: QualityCheck = Field(default_factory=QualityCheck)
    near: QualityCheck = Field(default_factory=QualityCheck)
    leaked: bool = False


class Quality(BaseModel):
    """Dataset quality: warnings only, they never make a report invalid."""

    n_examples: int = 0
    near_duplicate_threshold: float = 0.8
    exact_duplicates: QualityCheck = Field(default_factory=QualityCheck)
    near_duplicates: QualityCheck = Field(default_factory=QualityCheck)
    conflicting_answers: QualityCheck = Field(default_factory=QualityCheck)
    empty_answers: QualityCheck = Field(default_factory=QualityCheck)
    length_outliers: LengthOutliers = Field(default_factory=LengthOutliers)
    answer_balance: AnswerBalance = Field(default_factory=AnswerBalance)
    diversity: Diversity = Field(default_factory=Diversity)
    overlap: Overlap | None = None
    warnings: list[Finding] = Field(default_factory=list)


class ValidationReport(BaseModel):
    """Everything wrong with a dataset, its token statistics and what training would cost."""

    ok: bool
    purpose: Purpose = "fine-tune"
    format: Format | None = None
    model: str
    encoding: str
    # Whether the counts are the model's own tokenizer's, and how they were made.
    tokens_exact: bool = True
    token_count_source: str = ""
    context_limit: int | None = None
    n_bytes: int = 0
    n_lines: int = 0
    n_examples: int = 0
    errors: Findings = Field(default_factory=Findings)
    warnings: Findings = Field(default_factory=Findings)
    tokens: TokenStats = Field(default_factory=TokenStats)
    histogram: Histogram = Field(default_factory=Histogram)
    n_examples_over_context: int = 0
    billing_tokens_per_epoch: int = 0
    auto_n_epochs: int | None = None
    price_per_1m_tokens: float | None = None
    estimated_cost_usd: float | None = None
    elapsed_seconds: float = 0.0
    quality: Quality | None = None
