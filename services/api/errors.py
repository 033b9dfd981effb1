"""Every error leaves the API in one shape: `{"error": {type, code, message, param}}`.

On the OpenAI-compatible paths the statuses and words are OpenAI's: a request OpenAI would refuse
with 400 (ftq says 422 elsewhere) is a 400, and an unknown body key or a missing one reads as
OpenAI writes it, so SDK code that branches on `BadRequestError` keeps working.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from ftq.shared.errors import AppError, Unprocessable

log = logging.getLogger(__name__)

OPENAI_PATHS = ("/v1/files", "/v1/fine_tuning", "/v1/models", "/v1/chat")


def is_openai_path(request: Request) -> bool:
    """Whether the request is on the OpenAI-compatible surface."""
    return request.url.path.startswith(OPENAI_PATHS)


def error_body(error_type: str, code: str, message: str, param: str | None) -> dict[str, object]:
    """The error shape every answer uses."""
    return {"error": {"type": error_type, "code": code, "message": message, "param": param}}


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    status = exc.status_code
    if status == 422 and is_openai_path(request):
        status = 400
    return JSONResponse(exc.to_dict(), status_code=status, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(location) or None
    message = first.get("msg", "invalid request")
    if param:
        message = f"{param}: {message}"
    if is_openai_path(request):
        return _openai_validation_error(first.get("type"), param, message)
    return JSONResponse(
        error_body("invalid_request_error", "invalid_value", message, param), status_code=422
    )


def _openai_validation_error(kind: str | None, param: str | None, message: str) -> JSONResponse:
    """OpenAI's 400 and words for a body it would refuse."""
    if kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    return JSONResponse(
        error_body("invalid_request_error", "invalid_value", message, param), status_code=400
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body("invalid_request_error", code, str(exc.detail), None),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the schema let through (a NUL character, an out-of-range
    # number): bad input, not a server fault. The SQL and its parameters stay out of the answer.
    log.warning("database refused a value: %s", type(getattr(exc, "orig", exc)).__name__)
    message = "a value cannot be stored (it contains a NUL character or is out of range)"
    return await _app_error(request, Unprocessable(message))


def install(app: FastAPI) -> None:
    """Map AppError, validation errors and HTTP errors to JSON once."""
    # No handler for Exception: Starlette would run it in ServerErrorMiddleware, outside
    # RequestContextMiddleware, which answers the unexpected itself with the request id.
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
