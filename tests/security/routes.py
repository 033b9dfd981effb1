"""The app's routes as a table, read from the app itself so a new route is covered at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount

# Routes anyone may call: probes, metrics, the dashboard page (it asks for the key in the
# browser), FastAPI's docs, and OpenAI's webhook, which verifies its own signature.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("POST", "/v1/provider-webhooks/openai"),
}
# The embedded emulator: a test double of OpenAI mounted only in embedded mode, with its own auth.
MOUNTS_SKIPPED = {"/emulator"}
PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


@dataclass(frozen=True)
class Route:
    """One method on one path template."""

    method: str
    path: str

    @property
    def params(self) -> list[str]:
        """The path parameters' names, in order."""
        return PARAM.findall(self.path)

    @property
    def is_admin(self) -> bool:
        """Routes that take the admin token, not a team key."""
        return self.path.startswith("/v1/admin/")

    def url(self, values: dict[str, str]) -> str:
        """The path with its parameters filled in."""
        return PARAM.sub(lambda m: values[m.group(1)], self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _walk(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, including those of included routers (FastAPI nests them lazily)."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from _walk(candidates())
        else:
            yield route


def app_routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app serves, from app.routes and the OpenAPI schema."""
    found: set[Route] = set()
    for route in _walk(app.routes):
        if isinstance(route, Mount):
            assert route.path in MOUNTS_SKIPPED, f"unreviewed mount {route.path}"
            continue
        path = getattr(route, "path", None)
        for method in getattr(route, "methods", None) or ():
            if path is not None and method != "HEAD":
                found.add(Route(method, path))
    schema: dict[str, Any] = app.openapi()
    for path, operations in schema["paths"].items():
        for method in operations:
            found.add(Route(method.upper(), path))
    return sorted(found, key=lambda r: (r.path, r.method))


def protected_routes(app: FastAPI) -> list[Route]:
    """Every route that must refuse a caller without the right credential."""
    return [r for r in app_routes(app) if (r.method, r.path) not in PUBLIC]
