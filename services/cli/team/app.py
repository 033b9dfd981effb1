"""`ftq login` and the team command groups, registered on the `ftq` console script."""

from __future__ import annotations

from typing import Annotated

import typer

from ftq.services.cli.team import config
from ftq.services.cli.team.api import EXIT_CODES_HELP, OK, connect, console, print_json
from ftq.services.cli.team.datasets import datasets_app
from ftq.services.cli.team.evals import evals_app
from ftq.services.cli.team.jobs import jobs_app
from ftq.services.cli.team.schedules import schedules_app
from ftq.services.cli.team.sweeps import sweeps_app


def login(
    url: Annotated[str, typer.Option(help="the ftq API's base URL")] = "http://127.0.0.1:8000",
    key: Annotated[
        str,
        typer.Option(prompt="Team API key", hide_input=True, help="the team key (prompted)"),
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
) -> None:
    """Check a team key against the server and store URL and key (file mode 0600)."""
    credentials = config.Credentials(url.rstrip("/"), key.strip())
    with connect(credentials) as client:
        team = client.request("GET", "/v1/team")
    path = config.save(credentials)
    if as_json:
        print_json({"url": credentials.url, "team": team, "config": str(path)})
    else:
        console.print(
            f"logged in to {credentials.url} as team [bold]{team['name']}[/] ({team['id']}); "
            f"stored in {path}",
            soft_wrap=True,
        )
    raise typer.Exit(OK)


def register(app: typer.Typer) -> None:
    """Add `login`, `datasets`, `jobs` and `evals` to the `ftq` app."""
    app.command("login", epilog=EXIT_CODES_HELP)(login)
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(evals_app, name="evals")
    app.add_typer(sweeps_app, name="sweeps")
    app.add_typer(schedules_app, name="schedules")
