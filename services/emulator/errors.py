"""OpenAI-shaped errors of the emulator (a test double of OpenAI): one exception, one shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

JSON_PARSE_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
    "was not valid JSON.)"
)


class OpenAIError(Exception):
    """An error answered as `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI sends for this error."""
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        """This error as a response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    """A 400 invalid_request_error."""
    return OpenAIError(400, message, param=param, code=code)


def file_not_found(file_id: str) -> OpenAIError:
    """OpenAI's 404 for a missing file."""
    return OpenAIError(404, f"No such File object: {file_id}", param="id")


def job_not_found(job_id: str) -> OpenAIError:
    """OpenAI's 404 for a missing fine-tuning job."""
    return OpenAIError(
        404, f"Could not find fine tune: {job_id}", param="id", code="fine_tune_not_found"
    )


def missing(param: str) -> OpenAIError:
    """A missing required parameter."""
    return bad_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def invalid_type(param: str, expected: str, value: object) -> OpenAIError:
    """A parameter of the wrong JSON type."""
    got = json_type_name(value)
    return bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param,
        "invalid_type",
    )


def json_type_name(value: object) -> str:
    """How OpenAI names a JSON value's type in messages."""
    names = [(bool, "a boolean"), (int, "an integer"), (float, "a decimal"), (str, "a string")]
    names += [(list, "an array"), (dict, "an object")]
    if value is None:
        return "null"
    return next((name for kind, name in names if isinstance(value, kind)), "an unknown value")


def _validation_error(exc: RequestValidationError) -> OpenAIError:
    """FastAPI's 422 detail converted to OpenAI's 400."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())[1:]]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "missing" and param:
        return missing(param)
    if kind in {"int_parsing", "int_type", "float_parsing", "float_type", "bool_parsing"}:
        expected = "a boolean" if kind.startswith("bool") else "a number"
        expected = "an integer" if kind.startswith("int") else expected
        return invalid_type(param or "body", expected, first.get("input"))
    if kind == "extra_forbidden" and param:
        return bad_request(f"Unrecognized request argument supplied: {param}", None)
    return bad_request(
        f"Invalid '{param}': {first.get('msg', 'invalid value')}.", param, "invalid_value"
    )


async def _openai_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """Render an OpenAIError."""
    assert isinstance(exc, OpenAIError)
    return exc.response()


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    """Render a request validation failure as OpenAI does (400, not 422)."""
    assert isinstance(exc, RequestValidationError)
    return _validation_error(exc).response()


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    """Unknown routes and methods: OpenAI's "Invalid URL" answer."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (404, 405):
        message = f"Invalid URL ({request.method} {request.url.path})"
        return OpenAIError(404, message).response()
    return OpenAIError(exc.status_code, str(exc.detail)).response()


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app raises OpenAI-shaped."""
    app.add_exception_handler(OpenAIError, _openai_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
