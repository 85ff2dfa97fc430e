"""Domain exceptions and their one mapping to HTTP.

Services raise `AppError` subclasses and never know about HTTP; the handlers registered by
`install_error_handlers` render every error, expected or not, as an `ErrorResponse`.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from booking_service.schemas.errors import ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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


class AccountGone(NotAuthenticated):
    """The token is valid, but its account was closed (or never existed)."""

    code = "invalid_token"
    message = "This account no longer exists"


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


# Messages of errors raised by the framework, not by an AppError; the OpenAPI examples
# (openapi.py) quote them too.
VALIDATION_FAILED = "Request validation failed"
NOT_JSON = "Content-Type must be application/json"


def error_body(
    message: str,
    code: str,
    details: Sequence[ErrorDetail] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return ErrorResponse(
        message=message, code=code, details=list(details) if details else None, **(fields or {})
    ).model_dump(mode="json")


def error_response(
    status_code: int,
    message: str,
    code: str,
    *,
    details: Sequence[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, code, details, fields),
        status_code=status_code,
        headers=dict(headers or {}),
    )


# Codes for errors raised by the framework itself rather than by our services. FastAPI's only
# 400 is a body it could not decode (not UTF-8, nested too deeply, a number too long); JSON
# that is merely malformed is a 422.
HTTP_STATUS_CODES = {
    400: "malformed_body",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    # Only loc/msg/type: `input` and `ctx` can hold the raw (possibly secret or unserializable)
    # value the client sent.
    return [
        ErrorDetail(
            loc=[part if isinstance(part, int) else str(part) for part in err.get("loc", ())],
            msg=str(err.get("msg", "")),
            type=str(err.get("type", "value_error")),
        )
        for err in errors
    ]


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.status_code,
        exc.message,
        exc.code,
        details=exc.details,
        headers=exc.headers,
        fields=exc.fields,
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if isinstance(exc.body, bytes | bytearray):
        # FastAPI hands the raw bytes over only when the Content-Type was not JSON.
        return error_response(415, NOT_JSON, "unsupported_media_type")
    return error_response(
        422,
        VALIDATION_FAILED,
        "validation_error",
        details=_validation_details(exc.errors()),
    )


def _allowed_methods(request: Request) -> str:
    """Every method served at this path. Starlette's 405 names only the methods of the first
    route matching the path, and one path may be declared by several routers (GET and PATCH
    /events/{eventId})."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, message, code, headers=headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The id ties the client's report to the log line; nothing of the error reaches the client.
    # (RequestInstrumentation, outermost, sets the same id in the X-Request-ID header.)
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    log.error(
        "unhandled error on %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return error_response(
        500,
        f"Internal server error (request id {request_id})",
        "internal_error",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


# Domain errors: one class per answer a client can rely on.


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    message = "Invalid username or password"


class WrongPassword(Forbidden):
    code = "wrong_password"
    message = "The password does not match"


class UsernameTaken(Conflict):
    code = "username_taken"
    message = "Username already exists"


class EventNotFound(NotFound):
    code = "event_not_found"
    message = "Event not found"


class AlreadyBooked(Conflict):
    code = "already_booked"
    message = "You already hold a ticket or a place in line for this event"


class NothingToCancel(NotFound):
    code = "booking_not_found"
    message = "You hold no ticket or place in line for this event"


class NotEventOwner(Forbidden):
    code = "not_event_owner"
    message = "Only the event's owner can do this"


class EventClosed(Conflict):
    code = "event_closed"
    message = "The event is closed: it takes no new bookings"


class EventCancelled(Conflict):
    code = "event_cancelled"
    message = "The event is cancelled"


class CapacityBelowHeld(Conflict):
    code = "capacity_below_held"
    message = "Tickets cannot go below those already confirmed or offered"

    def __init__(self, held: int | None = None) -> None:
        message = None
        if held is not None:
            message = f"Tickets cannot go below the {held} already confirmed or offered"
        super().__init__(message)


class OfferNotFound(NotFound):
    code = "offer_not_found"
    message = "You hold no open offer for this event"


class OfferExpired(Gone):
    code = "offer_expired"
    message = "The offer lapsed at its deadline and its ticket was passed on"


class TooManyTickets(AppError):
    status_code = 422
    code = "validation_error"

    def __init__(self, maximum: int) -> None:
        message = f"An event can have at most {maximum} tickets"
        detail = ErrorDetail(loc=["body", "tickets"], msg=message, type="less_than_equal")
        super().__init__(VALIDATION_FAILED, details=[detail])


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


class SalesNotStarted(Conflict):
    code = "sales_not_started"
    message = "Sales for this event have not started yet"

    def __init__(self, sales_start: datetime | None = None, now: datetime | None = None) -> None:
        if sales_start is None or now is None:  # the documented example
            super().__init__(headers={"Retry-After": "1"})
            return
        wait = max(1, math.ceil((sales_start - now).total_seconds()))
        super().__init__(
            f"Sales for this event open at {sales_start.isoformat().replace('+00:00', 'Z')}",
            headers={"Retry-After": str(wait)},
            fields={"sales_start": sales_start},
        )


class SalesEnded(Conflict):
    code = "sales_ended"
    message = "Sales for this event have ended: it takes no new bookings"


class SaleWindowEmpty(Conflict):
    """A change to one end of the window that would put it at or before the other end, as
    stored (a body naming both ends is checked by validation: 422)."""

    code = "sale_window_empty"
    message = "sales_end must come after sales_start; the change would leave no time to sell"


class TicketNotFound(NotFound):
    """One answer for a code that never existed, was cancelled or was transferred away."""

    code = "ticket_not_found"
    message = "No valid ticket for this event has this code"


class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"
    message = "This ticket was already checked in"

    def __init__(self, checked_in_at: datetime | None = None) -> None:
        if checked_in_at is None:  # the documented example
            super().__init__()
            return
        super().__init__(
            f"This ticket was already checked in at "
            f"{checked_in_at.isoformat().replace('+00:00', 'Z')}",
            fields={"checked_in_at": checked_in_at},
        )


class CheckedIn(Conflict):
    code = "checked_in"
    message = "This ticket was checked in at the door: it can no longer be given back or moved"


class NothingToTransfer(NotFound):
    code = "booking_not_found"
    message = "You hold no ticket for this event"


class NotConfirmed(Conflict):
    code = "ticket_not_confirmed"
    message = "Only a confirmed ticket can be transferred, not an offer or a place in line"


class RecipientNotFound(NotFound):
    """One answer for a name that never existed and for a closed account."""

    code = "recipient_not_found"
    message = "No open account has this username"


class RecipientHasClaim(Conflict):
    code = "recipient_already_booked"
    message = "The recipient already holds a ticket or a place in line for this event"


class TransfersDisabled(Forbidden):
    code = "transfers_disabled"
    message = "The event's owner does not allow transfers for this event"
