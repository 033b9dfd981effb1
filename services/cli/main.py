"""The `ftq` console script: serve, demo, migrate, config, and the offline dataset tools.

`main()` is the entry point: a bad setting prints one line to stderr and exits 2 (no traceback).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from ftq.services.cli.server import require_server
from ftq.shared.settings import exit_on_config_error

app = typer.Typer(help="ftq: fine-tuning job gateway", no_args_is_help=True)
console = Console()


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="bind address (FTQ_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (FTQ_PORT)")] = None,
) -> None:
    """Serve ftq; with no configuration, the embedded stack (SQLite, in-process worker)."""
    require_server("up")
    import uvicorn

    if host:
        os.environ["FTQ_HOST"] = host
    if port:
        os.environ["FTQ_PORT"] = str(port)
    from ftq.shared.settings import get_settings, reset_settings

    reset_settings()
    settings = get_settings()
    from ftq.services.api.main import create_app

    console.print(
        f"ftq serving on {settings.base_url} (database "
        f"{'SQLite' if settings.is_sqlite else 'PostgreSQL'}, provider "
        f"{settings.provider})"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command()
def demo(
    data_dir: Annotated[Path | None, typer.Option(help="where the demo keeps its state")] = None,
    provider: Annotated[
        str,
        typer.Option(
            help="emulator, together (Together's API, emulated), or local: a real LoRA "
            "fine-tune on this machine"
        ),
    ] = "emulator",
) -> None:
    """Start the embedded stack, run one fine-tuning job end to end and show what happened."""
    require_server("demo")
    from ftq.services.cli.demo.runner import LOG_FILE, run_demo

    folder = data_dir or Path(os.environ.get("FTQ_DATA_DIR", ".ftq")) / "demo" / str(
        int(time.time())
    )
    if provider == "local":
        from ftq.services.cli.demo.local import run_local_demo

        local = run_local_demo(folder, console)
        ok = local["job"]["status"] == "succeeded" and local["eval"].get("status") == "completed"
        _demo_outcome(ok, folder / LOG_FILE)
    result = run_demo(folder, console, provider)
    ok = (
        result["job"]["status"] == "succeeded"
        and result["webhook"]["verified"]
        and result["eval"].get("status") == "completed"
    )
    _demo_outcome(ok, folder / LOG_FILE)


def _demo_outcome(ok: bool, log_file: Path) -> NoReturn:
    """The demo's last line and exit status."""
    if ok:
        console.print("[bold green]demo complete[/]")
        raise typer.Exit(0)
    console.print(f"[bold red]demo failed[/]: the server's logs are in {log_file}", soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Apply database migrations (production runs this as a separate step)."""
    require_server("migrate")
    from ftq.shared.migrate import upgrade
    from ftq.shared.settings import get_settings

    settings = get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url, revision)
    console.print(f"database at {revision}")


def _register_dataset_commands() -> None:
    from ftq.services.cli.datasets import datasets_cli

    for command in datasets_cli.registered_commands:
        app.registered_commands.append(command)


_register_dataset_commands()


def _register_team_commands() -> None:
    from ftq.services.cli.team.app import register

    register(app)


_register_team_commands()


def _register_config_command() -> None:
    from ftq.services.cli.config_check import config_command

    app.command("config")(config_command)


_register_config_command()


def _register_providers_command() -> None:
    from ftq.services.cli.providers import providers_command

    app.command("providers")(providers_command)


_register_providers_command()


def main() -> None:
    """The `ftq` console script: the typer app, with configuration errors as exit status 2."""
    with exit_on_config_error():
        app()


if __name__ == "__main__":
    main()
