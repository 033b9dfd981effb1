"""`ftq config`: the resolved settings, secrets masked; do database, broker and providers answer?"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ftq.services.cli.server import require_server
from ftq.shared.observability.redaction import redact
from ftq.shared.settings import Settings, env_name, get_settings

MASK = "********"
UNSET = "(unset)"
CHECK_TIMEOUT = 3.0  # seconds each check may take
OK, FAIL, SKIP = "ok", "fail", "skip"
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]*(?P<at>@)")
_SECRET_ENV = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")  # read by the SDK when ftq's are unset

console = Console()


@dataclass
class Check:
    """One check's name, status (ok, fail, skip) and a one-line detail."""

    name: str
    status: str
    detail: str


def mask_url(url: str) -> str:
    """The URL with any password replaced by the mask."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", url)


def _secret_values(settings: Settings) -> list[str]:
    values = [os.environ.get(name, "") for name in _SECRET_ENV]
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
    for url in (settings.resolved_database_url, settings.broker_url):
        password = re.search(r"://[^:/@\s]*:([^@/\s]*)@", url)
        if password:
            values.append(password.group(1))
    return sorted((v for v in values if len(v) >= 3), key=len, reverse=True)


def scrub(text: str, settings: Settings) -> str:
    """One line of text with every configured secret and URL password masked."""
    line = " ".join(str(text).split())
    for secret in _secret_values(settings):
        line = line.replace(secret, MASK)
    return redact(mask_url(line))


def _shown(name: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if value is None:
        return UNSET if _is_secret_field(name) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return mask_url(value)
    return value


def _is_secret_field(name: str) -> bool:
    return "SecretStr" in str(Settings.model_fields[name].annotation)


def resolved(settings: Settings) -> dict[str, Any]:
    """Every setting (by environment variable), secrets masked."""
    return {env_name(name): _shown(name, getattr(settings, name)) for name in Settings.model_fields}


def derived(settings: Settings) -> dict[str, Any]:
    """The values ftq works out from the settings."""
    from ftq.shared.providers.registry import configured_providers

    return {
        "resolved_database_url": mask_url(settings.resolved_database_url),
        "resolved_blob_dir": str(settings.resolved_blob_dir),
        "is_sqlite": settings.is_sqlite,
        "runs_embedded_worker": settings.runs_embedded_worker,
        "base_url": mask_url(settings.base_url),
        "resolved_emulator_url": mask_url(settings.resolved_emulator_url),
        "local_provider_enabled": settings.local_provider_enabled,
        "configured_providers": configured_providers(settings),
        # The SDKs read these when ftq's own keys are unset.
        **{f"env {name}": MASK if os.environ.get(name) else UNSET for name in _SECRET_ENV},
    }


def _timed(name: str, settings: Settings, probe: Callable[[], str]) -> Check:
    """Run a probe in a daemon thread; ok with its detail, fail with its error or on timeout."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["detail"] = probe()
        except BaseException as exc:  # every failure is a failed check
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"ftq-config-{name}", daemon=True)
    thread.start()
    thread.join(CHECK_TIMEOUT + 1.0)
    if thread.is_alive():
        return Check(name, FAIL, f"no answer within {CHECK_TIMEOUT:g} s")
    if "error" in outcome:
        return Check(name, FAIL, scrub(_error_line(outcome["error"]), settings))
    return Check(name, OK, scrub(outcome["detail"], settings))


def _error_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    message = getattr(inner, "message", None) or str(inner) or type(inner).__name__
    first = next((line for line in str(message).splitlines() if line.strip()), str(message))
    return f"{type(inner).__name__}: {first.strip()}"


def check_database(settings: Settings) -> Check:
    """SELECT 1 on the configured database."""
    from sqlalchemy import text

    from ftq.shared.db import make_engine

    url = settings.resolved_database_url
    if settings.is_sqlite:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return Check("database", OK, f"SQLite file {path} not created yet (`ftq up` makes it)")

    def probe() -> str:
        if settings.is_sqlite:
            engine = make_engine(url)
        else:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            engine = create_engine(
                url, poolclass=NullPool, connect_args={"connect_timeout": int(CHECK_TIMEOUT)}
            )
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1")).scalar_one()
        finally:
            engine.dispose()
        return f"SELECT 1 answered ({engine.dialect.name} at {mask_url(url)})"

    return _timed("database", settings, probe)


def check_broker(settings: Settings) -> Check:
    """Ping the broker; the memory broker is in-process."""
    url = settings.broker_url
    if url.startswith("memory"):
        return Check("broker", OK, "in-process (memory://): nothing to reach")

    def probe() -> str:
        if url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            client = redis.Redis.from_url(
                url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
            )
            try:
                client.ping()
            finally:
                client.close()
        else:
            from kombu import Connection

            with Connection(url, connect_timeout=CHECK_TIMEOUT) as connection:
                connection.ensure_connection(max_retries=1)
        return f"answered at {mask_url(url)}"

    return _timed("broker", settings, probe)


def check_provider(name: str, settings: Settings) -> Check:
    """One cheap read (a one-job page of fine-tuning jobs) through the provider."""
    label = f"provider {name}"
    if name == "emulator" and settings.emulator_url is None:
        return Check(label, SKIP, "served by the API process (not checked)")
    if name == "local":
        return Check(label, SKIP, "runs on this deployment's gpu workers (not checked)")

    def probe() -> str:
        from ftq.shared.providers.openai_provider import OpenAIProvider
        from ftq.shared.providers.registry import get_provider

        provider = get_provider(name, settings)
        where = ""
        if isinstance(provider, OpenAIProvider):
            provider.client = provider.client.with_options(timeout=CHECK_TIMEOUT, max_retries=0)
            where = f" at {provider.client.base_url}"
        page = provider.list_jobs(limit=1)
        return f"listed fine-tuning jobs{where} ({len(page.jobs)} on the first page)"

    return _timed(label, settings, probe)


def run_checks(settings: Settings) -> list[Check]:
    """Database, broker, then each configured provider."""
    from ftq.shared.providers.registry import configured_providers

    checks = [check_database(settings), check_broker(settings)]
    checks.extend(check_provider(name, settings) for name in configured_providers(settings))
    return checks


def _cell(value: Any) -> Text:
    if value is None or value == {} or value == []:  # unset or empty: no bare braces
        return Text("-")
    return Text(value if isinstance(value, str) else json.dumps(value))


def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts")] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="only print the settings; reach nothing")
    ] = False,
) -> None:
    """Print the resolved settings (secrets masked) and check database, broker and providers.

    Exit status: 0 all checks pass, 1 a check failed, 2 a setting is invalid.
    """
    require_server("config")
    settings = get_settings()
    values, extra = resolved(settings), derived(settings)
    checks = [] if no_check else run_checks(settings)
    ok = all(check.status != FAIL for check in checks)
    if as_json:
        body = {
            "settings": values,
            "derived": extra,
            "checks": [asdict(check) for check in checks],
            "ok": ok,
        }
        typer.echo(json.dumps(body, indent=2))
    else:
        table = Table(title="ftq settings", show_lines=False)
        table.add_column("variable", style="bold")
        table.add_column("value", overflow="fold")
        for name, value in values.items():
            table.add_row(name, _cell(value))
        for name, value in extra.items():
            table.add_row(f"[dim](derived)[/] {name}", _cell(value))
        console.print(table)
        if checks:
            results = Table(title="checks")
            results.add_column("check", style="bold")
            results.add_column("status")
            results.add_column("detail", overflow="fold")
            colour = {OK: "green", FAIL: "red", SKIP: "yellow"}
            for check in checks:
                status = f"[{colour[check.status]}]{check.status}[/]"
                results.add_row(check.name, status, Text(check.detail))
            console.print(results)
    raise typer.Exit(0 if ok else 1)
