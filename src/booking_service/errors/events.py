"""Errors of events: finding and owning one, its state, its tickets and its sale window."""

from __future__ import annotations

import math
from datetime import datetime

from booking_service.errors.base import (
    VALIDATION_FAILED,
    AppError,
    AtMost,
    Conflict,
    Forbidden,
    NotFound,
)
from booking_service.schemas.errors import ErrorDetail


class EventNotFound(NotFound):
    code = "event_not_found"
    message = "Event not found"


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


class TooManyTickets(AppError):
    status_code = 422
    code = "validation_error"

    def __init__(self, maximum: int) -> None:
        message = f"An event can have at most {maximum} tickets"
        detail = ErrorDetail(loc=["body", "tickets"], msg=message, type="less_than_equal")
        super().__init__(VALIDATION_FAILED, details=[detail])


class MaxPerUserAboveLimit(AtMost):
    def __init__(self, limit: int = 10) -> None:
        super().__init__("max_per_user", f"max_per_user must be at most {limit}")


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
