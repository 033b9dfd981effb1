"""Azure OpenAI's dialect of the emulator (a test double): `/openai/...` routes with `api-version`.

The SDK's `AzureOpenAI(azure_endpoint=E, api_version=V, api_key=K)` calls `E/openai/files?
api-version=V` with an `api-key` header (or `Authorization: Bearer` with an Entra ID token), and
chat as `E/openai/deployments/{deployment}/chat/completions`. The middleware checks the version and
the credential here, then serves the request with the same handlers as `/v1`.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers, QueryParams

from ftq.services.emulator.errors import OpenAIError

PREFIX = "/openai"
API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
DEPLOYMENT_PATH = re.compile(r"/deployments/[^/]+(?=/)")
ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def is_azure(path: str) -> bool:
    """Whether a path (inside the app) is an Azure OpenAI route."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def openai_path(path: str) -> str:
    """The `/v1` path serving an Azure path (the body names the model, so deployments drop)."""
    return "/v1" + DEPLOYMENT_PATH.sub("", path[len(PREFIX) :], count=1)


def azure_route(route: str) -> str:
    """A "METHOD /v1/template" route as the Azure client called it."""
    method, _, template = route.partition(" ")
    return f"{method} {PREFIX}{template.removeprefix('/v1')}"


def auth_kind(headers: Headers) -> str:
    """The credential kind: api-key, bearer, api-key+bearer or none (never the value)."""
    kinds = []
    if headers.get("api-key"):
        kinds.append("api-key")
    if headers.get("authorization", "").lower().startswith("bearer "):
        kinds.append("bearer")
    return "+".join(kinds) or "none"


def check_request(query: QueryParams, headers: Headers) -> OpenAIError | None:
    """Azure's refusals: no or malformed `api-version` (400), no credential (401)."""
    version = query.get("api-version")
    if not version:
        return OpenAIError(
            400,
            "Missing required query parameter 'api-version'. Azure OpenAI needs an API version, "
            "e.g. ?api-version=2025-04-01-preview.",
            param="api-version",
            code="BadRequest",
        )
    if not API_VERSION.fullmatch(version):
        return OpenAIError(400, "API version not supported", param="api-version", code="BadRequest")
    if auth_kind(headers) == "none":
        return OpenAIError(401, ACCESS_DENIED, code="401")
    return None
