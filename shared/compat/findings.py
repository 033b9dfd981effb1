"""The first findings of a dataset that failed ftq's validation, in one line for OpenAI's fields."""

from __future__ import annotations

from typing import Any

from ftq.shared.models import Dataset

FINDINGS_SHOWN = 3


def summary(dataset: Dataset) -> str:
    """`line 2 at messages: code (message); ...; and N more. Full report: GET /v1/datasets/ID`."""
    errors = (dataset.report or {}).get("errors") or {}
    items = errors.get("items") or []
    shown = [_finding(item) for item in items[:FINDINGS_SHOWN]]
    more = int(errors.get("total") or len(items)) - len(shown)
    listed = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return f"{listed or 'see the report'}. Full report: GET /v1/datasets/{dataset.id}"


def _finding(item: dict[str, Any]) -> str:
    where = f"line {item['line']}" if item.get("line") else "file"
    path = f" at {item['param']}" if item.get("param") else ""
    message = " ".join(str(item.get("message") or "").split())
    return f"{where}{path}: {item.get('code')} ({message})"
