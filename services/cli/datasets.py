"""`ftq validate`, `ftq convert` and `ftq split`: offline dataset tools, no server needed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ftq.shared.catalog import UnknownModel
from ftq.shared.datasets.convert import ConversionError, evals_to_chat, split
from ftq.shared.datasets.validation import ValidationReport, validate_file
from ftq.shared.datasets.validation.report import Distribution, Findings

datasets_cli = typer.Typer(help="Validate, convert and split JSONL datasets.", no_args_is_help=True)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

ExistingFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="a JSONL file")
]


@datasets_cli.command("validate")
def validate_command(
    file: ExistingFile,
    model: Annotated[str | None, typer.Option("--model", "-m", help="target model")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    purpose: Annotated[str, typer.Option(help="fine-tune or eval")] = "fine-tune",
    workers: Annotated[int | None, typer.Option(help="processes (default: all cores)")] = None,
) -> None:
    """Check a dataset offline: every problem with its line, token counts and cost."""
    try:
        report = validate_file(file, model=model, purpose=purpose, workers=workers)
    except (UnknownModel, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        render(report, file)
    raise typer.Exit(0 if report.ok else 1)


@datasets_cli.command("convert")
def convert_command(
    file: ExistingFile,
    output: Annotated[Path, typer.Option("--output", "-o", help="the chat JSONL to write")],
) -> None:
    """Convert OpenAI evals records {input, ideal} into chat fine-tuning examples."""
    try:
        result = evals_to_chat(file, output)
    except ConversionError as exc:
        err_console.print(
            f"[red]error:[/red] {exc.total} line(s) could not be converted; nothing was written"
        )
        for line, reason in exc.problems:
            err_console.print(f"  line {line}: {reason}")
        raise typer.Exit(1) from exc
    console.print(
        f"Converted {result.converted:,} records to {output}. Check it with: ftq validate {output}"
    )


@datasets_cli.command("split")
def split_command(
    file: ExistingFile,
    output: Annotated[str, typer.Option("--output", "-o", help="prefix of the two files")],
    fraction: Annotated[float, typer.Option(help="share that goes to validation")] = 0.1,
    seed: Annotated[int, typer.Option(help="the same seed gives the same split")] = 42,
) -> None:
    """Cut a seeded validation split: PREFIX_train.jsonl and PREFIX_valid.jsonl."""
    train, valid = Path(f"{output}_train.jsonl"), Path(f"{output}_valid.jsonl")
    try:
        result = split(file, train, valid, fraction, seed)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{result.n_train:,} examples to {train}, {result.n_valid:,} to {valid}")


def render(report: ValidationReport, file: Path) -> None:
    """Print a report for a person."""
    fmt = report.format or "unknown format"
    console.print(f"[bold]{file}[/bold]", soft_wrap=True)
    console.print(
        f"{report.n_examples:,} examples, {fmt}, {_size(report.n_bytes)}; "
        f"model {report.model} ({report.encoding})",
        soft_wrap=True,
    )
    _findings("Errors", report.errors, "red")
    _findings("Warnings", report.warnings, "yellow")
    if report.tokens.total.count:
        console.print(_stats_table(report))
        _histogram(report)
    _cost(report)
    if report.ok:
        console.print("[green bold]Valid[/green bold]: ready to upload.")
    else:
        console.print(
            f"[red bold]Invalid[/red bold]: {report.errors.total:,} error(s); fix "
            "them before uploading."
        )


def _size(n_bytes: int) -> str:
    """A file size for people."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} bytes"


def _findings(title: str, findings: Findings, colour: str) -> None:
    """A table of findings and the counts by code."""
    if not findings.total:
        return
    counts = ", ".join(f"{code} x{n:,}" for code, n in findings.by_code.items())
    console.print(f"[{colour} bold]{title}: {findings.total:,}[/{colour} bold] ({counts})")
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("line", "code", "where", "message"):
        table.add_column(column, overflow="fold")
    for f in findings.items:
        table.add_row(
            "-" if f.line is None else str(f.line),
            f"[{colour}]{f.code}[/{colour}]",
            f.param or "",
            f.message,
        )
    console.print(table)
    if findings.truncated:
        console.print(
            f"  ... and {findings.total - len(findings.items):,} more (--json lists the first 100)"
        )


def _stats_table(report: ValidationReport) -> Table:
    """Per-example statistics as a table."""
    table = Table(title="Per example", title_justify="left", box=None)
    for column in ("", "min", "max", "mean", "p50", "p90", "p99"):
        table.add_column(column, justify="right")
    rows: list[tuple[str, Distribution]] = [
        ("total tokens", report.tokens.total),
        ("assistant tokens", report.tokens.assistant),
        ("messages", report.tokens.messages),
    ]
    for name, d in rows:
        table.add_row(
            name,
            *(
                f"{v:,}" if v is not None else "-"
                for v in (d.min, d.max, d.mean, d.p50, d.p90, d.p99)
            ),
        )
    return table


def _histogram(report: ValidationReport, width: int = 40) -> None:
    """Total tokens per example as horizontal bars."""
    h = report.histogram
    if len(h.counts) < 2:
        return
    top = max(h.counts)
    console.print("[bold]Total tokens per example[/bold]")
    for i, n in enumerate(h.counts):
        low, high = h.edges[i], h.edges[i + 1] - 1
        label = f"{low:,}" if low == high else f"{low:,}-{high:,}"
        bar = "#" * round(width * n / top) if n else ""
        console.print(f"  {label:>17} {bar} {n:,}")


def _cost(report: ValidationReport) -> None:
    """Billing tokens, epochs and estimated cost."""
    if report.purpose != "fine-tune":
        return
    over = report.n_examples_over_context
    note = f" ({over:,} examples over the context)" if over else ""
    console.print(f"Billing tokens per epoch: {report.billing_tokens_per_epoch:,}{note}")
    console.print(f'Epochs for n_epochs "auto": {report.auto_n_epochs}')
    if report.estimated_cost_usd is None:
        console.print(
            f"Estimated cost: unknown, OpenAI publishes no training price for {report.model} "
            "(set FTQ_TRAINING_PRICES)"
        )
    else:
        console.print(
            f"Estimated cost: ${report.estimated_cost_usd:,.2f} at "
            f"${report.price_per_1m_tokens:,.2f} per 1M tokens"
        )


if __name__ == "__main__":
    datasets_cli()
