"""One error base class; the API maps every `AppError` to the JSON error shape once."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error a client can act on: HTTP status, stable code, message, offending parameter."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        """The `{"error": {...}}` body of DESIGN.md."""
        return {
            "error": {
                "type": self.error_type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
            }
        }


class BadRequest(AppError):
    """Malformed input (400)."""


class Unauthorized(AppError):
    """Missing or wrong credentials (401)."""

    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class NotFound(AppError):
    """The object does not exist or belongs to another team (404)."""

    status_code = 404
    code = "not_found"


class Conflict(AppError):
    """The object's state forbids the request (409)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    """An upload over the size limit (413)."""

    status_code = 413
    code = "file_too_large"


class Unprocessable(AppError):
    """Well-formed but semantically invalid input (422)."""

    status_code = 422
    code = "invalid_value"


class QuotaExceeded(AppError):
    """A team limit was reached (429)."""

    status_code = 429
    error_type = "quota_error"
    code = "quota_exceeded"


class ServiceUnavailable(AppError):
    """A dependency is down (503)."""

    status_code = 503
    error_type = "server_error"
    code = "service_unavailable"


class Forbidden(AppError):
    """The caller may not do this to the object (403)."""

    status_code = 403
    code = "permission_denied"
