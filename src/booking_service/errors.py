"""Domain exceptions: plain Python, no web framework.

Services raise `AppError` subclasses. Each carries the status, code, message and headers a
client gets for it; `http_errors` is the one module that turns them into HTTP answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from booking_service.schemas.errors import ErrorDetail

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


# Messages of errors raised by the framework, not by an AppError (http_errors.py answers
# them); the OpenAPI examples quote them too.
VALIDATION_FAILED = "Request validation failed"
NOT_JSON = "Content-Type must be application/json"


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


class _AtMost(AppError):
    """A 422 on one body field whose bound is not the schema's but the event's or the server's;
    the message names the bound."""

    status_code = 422
    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        detail = ErrorDetail(loc=["body", field], msg=message, type="less_than_equal")
        super().__init__(message, details=[detail])


class QuantityAboveLimit(_AtMost):
    def __init__(self, limit: int = 1) -> None:
        super().__init__("quantity", f"quantity must be at most {limit} for this event")


class QuantityAboveHeld(_AtMost):
    def __init__(self, held: int = 1) -> None:
        super().__init__("quantity", f"quantity must be at most {held}: that is what you hold")


class MaxPerUserAboveLimit(_AtMost):
    def __init__(self, limit: int = 10) -> None:
        super().__init__("max_per_user", f"max_per_user must be at most {limit}")


class PartyTooLarge(Conflict):
    code = "party_too_large"
    message = "The party cannot fit: the event has fewer tickets"

    def __init__(self, quantity: int | None = None, capacity: int | None = None) -> None:
        message = None
        if quantity is not None and capacity is not None:
            message = f"A party of {quantity} cannot fit: the event has {capacity} tickets"
        super().__init__(message)


class OfferAllOrNothing(Conflict):
    code = "offer_all_or_nothing"
    message = "An offer is taken or given up whole: accept it or decline it"


class CapacityBelowParty(Conflict):
    code = "capacity_below_party"
    message = "Tickets cannot go below the largest party in line: it could never be served"

    def __init__(self, party: int | None = None) -> None:
        message = None
        if party is not None:
            message = (
                f"Tickets cannot go below {party}, the largest party in line: "
                "it could never be served"
            )
        super().__init__(message)
