"""FastAPI app of the OpenAI emulator: a documented test double of OpenAI, never a trainer.

Routes live under `/v1` (plus `/_emulator` controls), so mounted at `/emulator` the SDK's
`base_url` is `http://host:port/emulator/v1`; Azure OpenAI's client is served the same routes
under `/openai` (azure.py) and Together AI's SDK its own under `/together` (together/).
`FTQ_EMULATOR_SPEED` sets the module-level app's speed factor (emulated seconds per real second,
default 60; 0 freezes time until jobs are advanced).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from ftq.services.emulator.errors import install_error_handlers
from ftq.services.emulator.faults import Faults
from ftq.services.emulator.middleware import EmulatorMiddleware
from ftq.services.emulator.routes.admin import admin_router
from ftq.services.emulator.routes.chat import chat_router
from ftq.services.emulator.routes.files import files_router
from ftq.services.emulator.routes.jobs import jobs_router
from ftq.services.emulator.routes.limits import limits_router
from ftq.services.emulator.routes.models import models_router
from ftq.services.emulator.routes.permissions import permissions_router
from ftq.services.emulator.store import EmulatorState
from ftq.services.emulator.together.routes import together_routers


def create_app(
    speed: float = 60.0, org_slug: str = "emulator", faults: Faults | None = None
) -> FastAPI:
    """A fresh emulator with its own in-memory state; `faults` apply from the start and on reset."""
    if speed < 0:
        raise ValueError("speed must not be negative")
    state = EmulatorState(speed=speed, org_slug=org_slug, initial_faults=faults)
    app = FastAPI(
        title="OpenAI emulator (test double)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.emulator = state
    install_error_handlers(app)
    makers = (
        files_router,
        jobs_router,
        permissions_router,
        limits_router,
        models_router,
        chat_router,
        admin_router,
    )
    routers = [make(state) for make in makers] + together_routers(state)
    for router in routers:
        app.include_router(router)
    routes = [route for router in routers for route in router.routes]
    app.add_middleware(EmulatorMiddleware, state=state, routes=routes)
    return app


app = create_app(speed=float(os.environ.get("FTQ_EMULATOR_SPEED", "60")))
