"""The FastAPI app: routers, error mapping, and (embedded mode) the worker and the emulator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI

from ftq.services.api import errors, loop_reads
from ftq.services.api.middleware import RequestContextMiddleware
from ftq.services.api.routers import (
    admin,
    artifacts,
    dashboard,
    datasets,
    eval_schedules,
    evals,
    health,
    jobs,
    metrics,
    openai_chat,
    openai_files,
    openai_jobs,
    openai_models,
    provider_credentials,
    provider_webhooks,
    sweeps,
    teams,
    webhooks,
)
from ftq.shared import wiring
from ftq.shared.observability.logging import configure_logging, is_configured
from ftq.shared.settings import Settings, exit_on_config_error, get_settings

# Starlette matches routes in order: the hot proxied chat route comes first after the probes.
ROUTERS = (
    health,
    metrics,
    openai_chat,
    admin,
    teams,
    datasets,
    jobs,
    artifacts,
    webhooks,
    provider_credentials,
    evals,
    eval_schedules,
    sweeps,
    provider_webhooks,
    openai_files,
    openai_jobs,
    openai_models,
    dashboard,
)

log = logging.getLogger(__name__)


def _embedded_lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not is_configured():  # at startup, not import: CLI commands keep their plain output
            configure_logging("api", settings=settings)
        # Sync routes run on this many threads; more only contend for the GIL and the pool.
        to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        if settings.is_sqlite:
            from ftq.shared.migrate import upgrade

            settings.data_dir.mkdir(parents=True, exist_ok=True)
            upgrade(settings.resolved_database_url)  # embedded mode migrates its own file
        try:
            if not settings.runs_embedded_worker:
                yield
                return
            from ftq.services.worker.embedded import EmbeddedRuntime

            with EmbeddedRuntime():
                yield
        finally:
            await loop_reads.close_pool()

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for the given (or configured) settings."""
    settings = settings or get_settings()
    wiring.install()
    app = FastAPI(
        title="ftq",
        version="0.1.0",
        lifespan=_embedded_lifespan(settings),
        description="Fine-tuning job gateway",
    )
    errors.install(app)
    app.add_middleware(RequestContextMiddleware)
    for module in ROUTERS:
        app.include_router(module.router)
    if settings.provider == "emulator" and settings.emulator_url is None:
        from ftq.services.emulator.app import create_app as create_emulator

        app.mount("/emulator", create_emulator(speed=settings.emulator_speed))
    return app


with exit_on_config_error():  # a bad setting: one stderr line, exit status 2
    app = create_app()
