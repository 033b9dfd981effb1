"""Dataset validation: every finding with its line, token statistics, epochs and cost."""

from ftq.shared.datasets.validation.codes import ERRORS, WARNINGS
from ftq.shared.datasets.validation.core import sniff_format, validate_file
from ftq.shared.datasets.validation.report import (
    Distribution,
    Finding,
    Findings,
    Histogram,
    TokenStats,
    ValidationReport,
)
from ftq.shared.datasets.validation.stats import auto_n_epochs, estimate_cost

__all__ = [
    "ERRORS",
    "WARNINGS",
    "Distribution",
    "Finding",
    "Findings",
    "Histogram",
    "TokenStats",
    "ValidationReport",
    "auto_n_epochs",
    "estimate_cost",
    "sniff_format",
    "validate_file",
]
