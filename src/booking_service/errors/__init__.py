"""Domain exceptions: plain Python, no web framework.

Services raise `AppError` subclasses. Each carries the status, code, message and headers a
client gets for it; `http_errors` is the one module that turns them into HTTP answers. They are
kept by domain in the modules of this package, and all of them are importable from here: the
vocabulary of the service in one place.
"""

from __future__ import annotations

from booking_service.errors.accounts import (
    AccountGone,
    InvalidCredentials,
    UsernameTaken,
    WrongPassword,
)
from booking_service.errors.base import (
    BEARER_CHALLENGE,
    NOT_JSON,
    VALIDATION_FAILED,
    AppError,
    Conflict,
    Forbidden,
    Gone,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotAuthenticated,
    NotFound,
    NotReady,
    RateLimited,
    ServiceBusy,
)
from booking_service.errors.bookings import (
    AlreadyBooked,
    NothingToCancel,
    OfferAllOrNothing,
    OfferExpired,
    OfferNotFound,
    PartyTooLarge,
    QuantityAboveHeld,
    QuantityAboveLimit,
)
from booking_service.errors.events import (
    CapacityBelowHeld,
    CapacityBelowParty,
    EventCancelled,
    EventClosed,
    EventNotFound,
    MaxPerUserAboveLimit,
    NotEventOwner,
    SalesEnded,
    SalesNotStarted,
    SaleWindowEmpty,
    TooManyTickets,
)
from booking_service.errors.tickets import (
    AlreadyCheckedIn,
    CheckedIn,
    NotConfirmed,
    NothingToTransfer,
    RecipientHasClaim,
    RecipientNotFound,
    TicketNotFound,
    TransfersDisabled,
)

__all__ = [
    "BEARER_CHALLENGE",
    "NOT_JSON",
    "VALIDATION_FAILED",
    "AccountGone",
    "AlreadyBooked",
    "AlreadyCheckedIn",
    "AppError",
    "CapacityBelowHeld",
    "CapacityBelowParty",
    "CheckedIn",
    "Conflict",
    "EventCancelled",
    "EventClosed",
    "EventNotFound",
    "Forbidden",
    "Gone",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "InvalidCredentials",
    "MaxPerUserAboveLimit",
    "NotAuthenticated",
    "NotConfirmed",
    "NotEventOwner",
    "NotFound",
    "NotReady",
    "NothingToCancel",
    "NothingToTransfer",
    "OfferAllOrNothing",
    "OfferExpired",
    "OfferNotFound",
    "PartyTooLarge",
    "QuantityAboveHeld",
    "QuantityAboveLimit",
    "RateLimited",
    "RecipientHasClaim",
    "RecipientNotFound",
    "SaleWindowEmpty",
    "SalesEnded",
    "SalesNotStarted",
    "ServiceBusy",
    "TicketNotFound",
    "TooManyTickets",
    "TransfersDisabled",
    "UsernameTaken",
    "WrongPassword",
]
