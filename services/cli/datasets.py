"""`ftq validate`, `ftq convert` and `ftq split`: offline dataset tools, no server needed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ftq.services.cli.progress import display
from ftq.shared.catalog import UnknownModel
from ftq.shared.datasets.convert import ConversionError, evals_to_chat, split
from ftq.shared.datasets.validation import ValidationReport, validate_file
from ftq.shared.datasets.validation.core import validate_pair
from ftq.shared.datasets.validation.report import Distribution, Findings, Quality, QualityCheck

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
    validation_file: Annotated[
        Path | None,
        typer.Option(
            "--validation-file",
            exists=True,
            dir_okay=False,
            readable=True,
            help="the job's validation file: also check it and report its overlap with FILE",
        ),
    ] = None,
    quality: Annotated[
        bool, typer.Option("--quality/--no-quality", help="run the quality checks")
    ] = True,
) -> None:
    """Check a dataset offline: every problem with its line, token counts and cost."""
    valid_report: ValidationReport | None = None
    try:
        with display(console, enabled=not as_json) as progress:
            size = f"{file.stat().st_size / 1e6:.1f} MB"
            progress.add_task(f"validating {file.name}", total=None, detail=size)
            if validation_file is not None:
                report, valid_report = validate_pair(
                    file, validation_file, model=model, workers=workers
                )
            else:
                report = validate_file(
                    file, model=model, purpose=purpose, workers=workers, quality=quality
                )
    except (UnknownModel, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        render(report, file)
        if valid_report is not None and validation_file is not None:
            _validation_summary(valid_report, validation_file)
    ok = report.ok and (valid_report is None or valid_report.ok)
    raise typer.Exit(0 if ok else 1)


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
    if report.quality is not None:
        print_quality(report.quality)
    if report.ok:
        console.print("[green bold]Valid[/green bold]: ready to upload.")
    else:
        console.print(
            f"[red bold]Invalid[/red bold]: {report.errors.total:,} error(s); fix "
            "them before uploading."
        )


def _validation_summary(report: ValidationReport, file: Path) -> None:
    """One line on the validation file (its own errors are its own report's)."""
    state = (
        "[green]valid[/green]"
        if report.ok
        else f"[red]invalid[/red], {report.errors.total:,} error(s): run ftq validate {file}"
    )
    console.print(
        f"Validation file {file}: {report.n_examples:,} examples, {state}", soft_wrap=True
    )


def _quality_lines(check: QualityCheck, with_matches: bool) -> str:
    """The first lines of a check, with the lines they match."""
    shown = [
        f"{line} (~{match})" if with_matches else str(line)
        for line, match in zip(check.lines, check.matches or [0] * len(check.lines), strict=True)
    ]
    more = f" ... +{check.count - len(check.lines):,}" if check.truncated else ""
    return ", ".join(shown) + more


def print_quality(q: Quality, out: Console = console) -> None:
    """The quality section, concisely: one line per check, then its warnings."""
    out.print("[bold]Quality[/bold] (warnings only)")
    rows: list[tuple[str, QualityCheck, bool]] = [
        ("exact duplicates", q.exact_duplicates, True),
        (f"near duplicates (>= {q.near_duplicate_threshold:g})", q.near_duplicates, True),
        ("conflicting answers", q.conflicting_answers, True),
        ("empty answers", q.empty_answers, False),
        ("length outliers", q.length_outliers, False),
    ]
    if q.overlap is not None:
        rows += [
            ("validation overlap, exact", q.overlap.exact, True),
            (f"validation overlap, near (>= {q.near_duplicate_threshold:g})", q.overlap.near, True),
        ]
    for name, check, with_matches in rows:
        detail = f": lines {_quality_lines(check, with_matches)}" if check.count else ""
        colour = "yellow" if check.count else "green"
        out.print(f"  {name}: [{colour}]{check.count:,}[/{colour}]{detail}", soft_wrap=True)
    if q.overlap is not None and q.overlap.leaked:
        out.print(
            "  (overlap lines are the validation file's; ~N is the training line they repeat)"
        )
    ab = q.answer_balance
    if ab.classification_like:
        top = ", ".join(f"{label} {n:,}" for label, n in list(ab.counts.items())[:5])
        colour = "yellow" if ab.imbalanced else "green"
        out.print(
            f"  answer balance: {ab.n_labels} labels ({top}); majority share "
            f"[{colour}]{(ab.majority_share or 0):.0%}[/{colour}]"
        )
    d = q.diversity
    if d.prompt_ngram_share is not None or d.answer_ngram_share is not None:

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v:.0%}"

        out.print(
            f"  diversity (distinct {d.ngram}-grams): prompts {pct(d.prompt_ngram_share)}, "
            f"answers {pct(d.answer_ngram_share)}"
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
