"""What every format's checks share while they walk one part of a file."""

from __future__ import annotations

from dataclasses import dataclass, field

from ftq.shared.datasets.validation.counting import TokenCounter
from ftq.shared.datasets.validation.findings import FindingLog

# Checked tool definitions: declared names, tokens, findings (code, message, param).
Definitions = tuple[frozenset[str], int, tuple[tuple[str, str, str], ...]]


@dataclass(slots=True)
class Checks:
    """The token counter, the two finding logs and the target model's limits."""

    counter: TokenCounter
    purpose: str = "fine-tune"
    context: int | None = None
    vision: bool = False
    errors: FindingLog = field(default_factory=FindingLog)
    warnings: FindingLog = field(default_factory=FindingLog)
    definitions: dict[bytes, Definitions] = field(default_factory=dict)

    @property
    def fine_tune(self) -> bool:
        """Whether the file is meant for training (not for evals)."""
        return self.purpose == "fine-tune"

    def too_long(self, line: int, tokens: int, what: str = "example") -> None:
        """Report an example over the training context."""
        if self.context is not None and tokens > self.context:
            self.errors.add(
                line,
                "example_too_long",
                f"{what} has {tokens:,} tokens, over the model's training context of "
                f"{self.context:,}: shorten it or split the conversation",
                None,
            )


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
