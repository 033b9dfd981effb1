"""What the demo shows beyond a finished job: data quality, the diagnosis, the best checkpoint."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ftq.services.cli.team.render import number


def show_quality(console: Console, dataset: dict[str, Any]) -> None:
    """The validation report's quality section, one line per check."""
    from ftq.services.cli.datasets import print_quality
    from ftq.shared.datasets.validation.report import Quality

    quality = (dataset.get("report") or {}).get("quality")
    if quality:
        print_quality(Quality.model_validate(quality), console)


def show_diagnosis(console: Console, job: dict[str, Any]) -> None:
    """The training diagnosis: each finding with its evidence and the suggested next run."""
    diagnosis = job.get("diagnosis") or {}
    findings = diagnosis.get("findings") or []
    if not findings:
        console.print("diagnosis: no problem found in the loss curves")
        return
    console.print("[bold]Diagnosis[/] of the run:")
    for finding in findings:
        suggestion = ", ".join(f"{k}={v}" for k, v in (finding.get("suggestion") or {}).items())
        console.print(
            f"  [yellow]{finding['kind']}[/]: {finding['message']}"
            + (f" (next run: {suggestion})" if suggestion else ""),
            soft_wrap=True,
        )


def checkpoint_table(
    evaluation: dict[str, Any], job: dict[str, Any], checkpoints: list[dict[str, Any]]
) -> Table:
    """Base, each checkpoint and the final model on the held-out items, the best one starred."""
    best = (job.get("best_checkpoint") or {}).get("model")
    steps = {c["fine_tuned_model_checkpoint"]: c["step_number"] for c in checkpoints}
    table = Table(title="Base, each checkpoint and the final model", title_justify="left")
    for column in ("", "model", "step", "score", "95% CI"):
        table.add_column(column, justify="left" if column in ("", "model") else "right")
    for i, result in enumerate(evaluation.get("results") or []):
        model = result["model"]
        kind = (
            "base" if i == 0 else "final" if model == job.get("fine_tuned_model") else "checkpoint"
        )
        step = "-" if kind == "base" else str(steps.get(model, "last"))
        interval = result.get("interval")
        span = f"{interval[0]:.2f}-{interval[1]:.2f}" if interval else "-"
        label = f"★ best {kind}" if model == best else kind
        table.add_row(label, model, step, number(result.get("score")), span)
    return table
