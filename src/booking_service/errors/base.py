"""The families of domain errors (one per HTTP status a client can get), and the errors any
request may meet whatever its domain: rate limits, a busy service, idempotency keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from booking_service.schemas.errors import ErrorDetail

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# Messages of errors raised by the framework, not by an AppError (http_errors.py answers
# them); the OpenAPI examples quote them too.
VALIDATION_FAILED = "Request validation failed"
NOT_JSON = "Content-Type must be application/json"


class AppError(Exception):
    status_code = 400
    code = "bad_request"
    message = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Sequence[ErrorDetail] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.headers = dict(headers or {})
        self.details = list(details) if details else None
        # Further ErrorResponse fields this answer carries (sales_start, checked_in_at).
        self.fields = dict(fields or {})
        super().__init__(self.message)


class NotAuthenticated(AppError):
    status_code = 401
    code = "not_authenticated"
    message = "Invalid or missing token"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers=BEARER_CHALLENGE)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You are not allowed to do this"


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "Conflict"


class Gone(AppError):
    status_code = 410
    code = "gone"
    message = "No longer available"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests"

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str]) -> None:
        super().__init__(message, headers=headers)  # Retry-After and X-RateLimit-*


class ServiceBusy(AppError):
    status_code = 503
    code = "busy"
    message = "The service is busy, please retry shortly"

    def __init__(self, message: str | None = None, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class NotReady(AppError):
    status_code = 503
    code = "not_ready"
    message = "Not ready: a dependency is unreachable"


class AtMost(AppError):
    """A 422 on one body field whose bound is not the schema's but the event's or the server's;
    the message names the bound."""

    status_code = 422
    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        detail = ErrorDetail(loc=["body", field], msg=message, type="less_than_equal")
        super().__init__(message, details=[detail])


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    message = "A request with this Idempotency-Key is still being processed; retry shortly"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class IdempotencyKeyReused(AppError):
    status_code = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used for a different request"

    def __init__(self) -> None:
        detail = ErrorDetail(
            loc=["header", "Idempotency-Key"],
            msg="Already used with another endpoint or body; use a new key for a new request",
            type="idempotency_key_reused",
        )
        super().__init__(details=[detail])
