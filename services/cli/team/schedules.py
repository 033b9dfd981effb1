"""`ftq schedules create|list`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ftq.services.cli.team import render
from ftq.services.cli.team.api import EXIT_CODES_HELP, OK, connect, console, print_json

schedules_app = typer.Typer(
    help="Re-score a model on a schedule and hear when it regresses (eval.regressed).",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@schedules_app.command("create")
def create_command(
    model: Annotated[str, typer.Option(help="the model to re-score")],
    dataset: Annotated[str, typer.Option(help="dataset the eval scores on (ds_…)")],
    cron: Annotated[str, typer.Option(help="five-field cron expression, e.g. '0 6 * * *'")],
    grader: Annotated[str, typer.Option(help="the eval's grader")] = "exact",
    baseline: Annotated[
        float | None, typer.Option(min=0, max=1, help="baseline score (default: the first run's)")
    ] = None,
    tolerance: Annotated[float, typer.Option(min=0, max=1, help="allowed drop")] = 0.05,
    timezone: Annotated[str, typer.Option(help="IANA timezone of the cron expression")] = "UTC",
    name: Annotated[str | None, typer.Option(help="a name to recognise it by")] = None,
    max_items: Annotated[int | None, typer.Option(min=1, help="score at most this many")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a schedule; print it with its first slot."""
    body: dict[str, Any] = {
        "model": model,
        "dataset": dataset,
        "grader": grader,
        "cron": cron,
        "timezone": timezone,
        "tolerance": tolerance,
    }
    optional = {"baseline": baseline, "name": name, "max_items": max_items}
    body.update({key: value for key, value in optional.items() if value is not None})
    with connect() as client:
        schedule = dict(client.request("POST", "/v1/eval-schedules", json=body))
    if as_json:
        print_json(schedule)
    else:
        console.print(schedules_table([schedule]))
    raise typer.Exit(OK)


@schedules_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """The team's schedules: last score, baseline, status, next run."""
    with connect() as client:
        schedules = client.list_all("/v1/eval-schedules")
    if as_json:
        print_json(schedules)
    else:
        console.print(schedules_table(schedules))
    raise typer.Exit(OK)


def schedules_table(schedules: list[dict[str, Any]]) -> Table:
    """One row per schedule; a regressed last run is marked in red."""
    table = Table(
        title="Eval schedules", title_justify="left", box=None, pad_edge=False, padding=(0, 2, 0, 0)
    )
    for column in ("id", "name", "model", "cron", "status", "last score", "baseline", "next run"):
        table.add_column(column, overflow="fold")
    for s in schedules:
        table.add_row(
            s["id"],
            s.get("name") or "-",
            s["model"],
            s["cron"],
            render.status(s["status"]),
            _last(s.get("last_run")),
            _baseline(s.get("baseline"), s.get("tolerance")),
            (s.get("next_run_at") or "-")[:16].replace("T", " ")
            if s["status"] == "active"
            else "-",
        )
    return table


def _last(run: dict[str, Any] | None) -> str:
    if run is None:
        return "-"
    if run["status"] != "completed":
        return render.status(run["status"])
    shown = render.number(run.get("score"), 3)
    return f"[red]{shown} regressed[/red]" if run.get("regressed") else shown


def _baseline(value: float | None, tolerance: float | None) -> str:
    if value is None:
        return "first run"
    return f"{value:.3f} (-{tolerance or 0:g})"
