"""`ftq datasets upload|list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from ftq.services.cli.team import render
from ftq.services.cli.team.api import EXIT_CODES_HELP, FAILED, connect, console, print_json

datasets_app = typer.Typer(
    help="Upload and list the team's datasets.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@datasets_app.command("upload")
def upload_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="a JSONL file")
    ],
    purpose: Annotated[str, typer.Option(help="fine-tune or eval")] = "fine-tune",
    model: Annotated[str | None, typer.Option(help="model the report counts tokens for")] = None,
    name: Annotated[str | None, typer.Option(help="a name (default: the file name)")] = None,
    wait: Annotated[bool, typer.Option(help="wait for validation and show the report")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for validation")] = 600.0,
    as_json: JsonOption = False,
) -> None:
    """Upload a dataset with a progress bar, then print its validation report."""
    fields = {"purpose": purpose, "name": name or file.name}
    if model:
        fields["model"] = model
    with connect() as client:
        with Progress(
            TextColumn("uploading {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            disable=as_json,
            transient=False,
        ) as progress:
            task = progress.add_task(file.name, total=file.stat().st_size)
            created = client.upload_dataset(
                file, lambda sent: progress.update(task, completed=sent), **fields
            )
        if not as_json:
            console.print(
                f"uploaded {created['id']} ({created['bytes']:,} bytes), {created['status']}"
            )
        dataset = created
        if wait:
            dataset = client.wait_dataset(created["id"], timeout, interval=0.3)
    if as_json:
        print_json(dataset)
    else:
        _report(dataset, file)
    raise typer.Exit(FAILED if dataset["status"] == "invalid" else 0)


def _report(dataset: dict[str, Any], file: Path) -> None:
    report = dataset.get("report")
    if report:
        from ftq.services.cli.datasets import render as render_report
        from ftq.shared.datasets.validation import ValidationReport

        render_report(ValidationReport.model_validate(report), file)
    console.print(f"dataset {dataset['id']}: {render.status(dataset['status'])}")


@datasets_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(min=1, max=100, help="how many, newest first")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The team's datasets, newest first."""
    with connect() as client:
        page = client.request("GET", "/v1/datasets", params={"limit": limit})
    if as_json:
        print_json(page["data"])
    else:
        console.print(render.datasets_table(page["data"]))
