"""`ftq evals run|show`."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any

import typer

from ftq.services.cli.client import FtqClient
from ftq.services.cli.team import render
from ftq.services.cli.team.api import EXIT_CODES_HELP, FAILED, OK, connect, console, print_json
from ftq.shared.evals.graders import GRADERS

evals_app = typer.Typer(
    help="Score models on a dataset, side by side.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@evals_app.command("run")
def run_command(
    dataset: Annotated[str, typer.Option(help="eval dataset id (ds_…)")],
    model: Annotated[list[str], typer.Option("--model", help="a model; repeat for several")],
    grader: Annotated[str, typer.Option(help=f"one of {', '.join(GRADERS)}")] = "exact",
    max_items: Annotated[int | None, typer.Option(min=1, help="score at most this many")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="parallel requests")] = None,
    name: Annotated[str | None, typer.Option(help="a name for the eval")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the result and print the table")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 1800.0,
    as_json: JsonOption = False,
) -> None:
    """Start an eval, wait for it, print the models side by side."""
    if grader not in GRADERS:
        raise typer.BadParameter(f"must be one of {', '.join(GRADERS)}", param_hint="--grader")
    body: dict[str, Any] = {"dataset": dataset, "models": model, "grader": grader}
    optional = {"max_items": max_items, "concurrency": concurrency, "name": name}
    body.update({k: v for k, v in optional.items() if v is not None})
    with connect() as client:
        ev = dict(client.request("POST", "/v1/evals", json=body))
        if not as_json:
            console.print(f"eval {ev['id']} {render.status(ev['status'])}: {', '.join(model)}")
        if wait:
            with console.status("scoring…", spinner="dots") if not as_json else nullcontext():
                ev = _wait(client, ev["id"], timeout)
    _finish(ev, as_json)


@evals_app.command("show")
def show_command(
    eval_id: Annotated[str, typer.Argument(help="ev_…")],
    as_json: JsonOption = False,
) -> None:
    """One eval's results."""
    with connect() as client:
        ev = dict(client.request("GET", f"/v1/evals/{eval_id}"))
    _finish(ev, as_json)


def _wait(client: FtqClient, eval_id: str, timeout: float) -> dict[str, Any]:
    return client.wait(
        f"/v1/evals/{eval_id}",
        lambda e: e["status"] in ("completed", "failed"),
        timeout,
        0.5,
        f"eval {eval_id}",
    )


def _finish(ev: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(ev)
    else:
        console.print(render.eval_table(ev))
        if ev.get("error"):
            error = ev["error"]
            message = error.get("message") if isinstance(error, dict) else error
            console.print(f"[red]eval {ev['status']}[/red]: {message}", soft_wrap=True)
    raise typer.Exit(FAILED if ev["status"] == "failed" else OK)
