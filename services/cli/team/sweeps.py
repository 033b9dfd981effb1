"""`ftq sweeps create|show`."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any

import typer
from rich.table import Table

from ftq.services.cli.client import FtqClient
from ftq.services.cli.team import render
from ftq.services.cli.team.api import EXIT_CODES_HELP, FAILED, OK, connect, console, print_json

sweeps_app = typer.Typer(
    help="Try several hyperparameter sets of one job and keep the best.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
SWEPT = {"n_epochs": int, "batch_size": int, "lora_rank": int, "learning_rate_multiplier": float}


@sweeps_app.command("create")
def create_command(
    model: Annotated[str, typer.Option(help="base model to fine-tune")],
    training_dataset: Annotated[str, typer.Option(help="training dataset id (ds_…)")],
    eval_dataset: Annotated[str, typer.Option(help="dataset that scores every trial (ds_…)")],
    vary: Annotated[
        list[str], typer.Option("--vary", help="NAME=V1,V2,… e.g. n_epochs=1,2,3; repeatable")
    ],
    grader: Annotated[str, typer.Option(help="the eval's grader")] = "exact",
    provider: Annotated[str | None, typer.Option(help="provider (default: the server's)")] = None,
    random: Annotated[
        int | None, typer.Option(min=1, help="sample this many combinations instead of all")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the random sample")] = 0,
    wait: Annotated[bool, typer.Option(help="wait for the winner and print the table")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 7200.0,
    as_json: JsonOption = False,
) -> None:
    """Start a sweep (at most 12 trials), wait for it, print the trials with the winner."""
    base: dict[str, Any] = {"model": model, "training_dataset": training_dataset}
    if provider:
        base["provider"] = provider
    search: dict[str, Any] = {"type": "grid", "seed": seed, "space": parse_space(vary)}
    if random is not None:
        search.update(type="random", n_trials=random)
    body = {"base": base, "search": search, "eval": {"grader": grader, "dataset": eval_dataset}}
    with connect() as client:
        sweep = dict(client.request("POST", "/v1/sweeps", json=body))
        if not as_json:
            trials = len(sweep["trials"])
            console.print(f"sweep {sweep['id']} {render.status(sweep['status'])}: {trials} trials")
        if wait:
            with (
                console.status("training trials…", spinner="dots") if not as_json else nullcontext()
            ):
                sweep = wait_sweep(client, sweep["id"], timeout)
    _finish(sweep, as_json)


@sweeps_app.command("show")
def show_command(
    sweep_id: Annotated[str, typer.Argument(help="swp_…")], as_json: JsonOption = False
) -> None:
    """One sweep's trials: hyperparameters, status, score, cost, the winner marked."""
    with connect() as client:
        sweep = dict(client.request("GET", f"/v1/sweeps/{sweep_id}"))
    _finish(sweep, as_json)


def parse_space(values: list[str]) -> dict[str, list[Any]]:
    """`n_epochs=1,2,3` options as the sweep's search space."""
    space: dict[str, list[Any]] = {}
    for value in values:
        name, _, listed = value.partition("=")
        if name not in SWEPT or not listed:
            raise typer.BadParameter(
                f"{value!r}: give NAME=V1,V2 with NAME one of {', '.join(SWEPT)}",
                param_hint="--vary",
            )
        try:
            space[name] = [SWEPT[name](item) for item in listed.split(",")]
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r}: {exc}", param_hint="--vary") from exc
    return space


def wait_sweep(client: FtqClient, sweep_id: str, timeout: float) -> dict[str, Any]:
    """Poll a sweep until it is no longer running."""
    return client.wait(
        f"/v1/sweeps/{sweep_id}", lambda s: s["status"] != "running", timeout, 0.5, sweep_id
    )


def sweep_table(sweep: dict[str, Any]) -> Table:
    """The sweep's trials, the winner marked with ★."""
    table = Table(
        title=f"Sweep {sweep['id']} ({sweep['status']})",
        title_justify="left",
        box=None,
        pad_edge=False,
        padding=(0, 2, 0, 0),
    )
    names = sorted({name for t in sweep["trials"] for name in t["hyperparameters"]})
    for column in ("", "job", *names, "status", "score", "cost $"):
        table.add_column(column, overflow="fold")
    for trial in sweep["trials"]:
        won = trial["job_id"] == sweep.get("best_job_id")
        state = "stopped early" if trial.get("stopped_early") else trial["status"]
        cost = trial.get("cost_usd")
        table.add_row(
            "★" if won else "",
            trial["job_id"],
            *(str(trial["hyperparameters"].get(name, "-")) for name in names),
            render.status(state),
            render.number(trial.get("score"), 3),
            "-" if cost is None else f"{float(cost):.4f}",
        )
    return table


def _finish(sweep: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(sweep)
    else:
        console.print(sweep_table(sweep))
        if sweep.get("best_job_id"):
            console.print(f"winner: {sweep['best_job_id']} (best eval score)")
    raise typer.Exit(FAILED if sweep["status"] == "failed" else OK)
