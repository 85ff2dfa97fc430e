"""When an event takes bookings: its state and its sale window, judged by the database's clock.

`now` is always a reading of the database's clock (models.types.db_utcnow) taken by the
statement that read the event, never a replica's own clock: replicas whose clocks drift apart
still agree on the moment sales open and end.
"""

from __future__ import annotations

from datetime import datetime

from booking_service.errors import (
    AppError,
    EventCancelled,
    EventClosed,
    SalesEnded,
    SalesNotStarted,
)
from booking_service.models import EventState


def booking_refusal(
    state: EventState, sales_start: datetime | None, sales_end: datetime | None, now: datetime
) -> AppError | None:
    """Why an event in this state and window takes no new booking or place in line at `now`."""
    if state is EventState.CANCELLED:
        return EventCancelled()
    if state is EventState.CLOSED:
        return EventClosed()
    if sales_start is not None and now < sales_start:
        return SalesNotStarted(sales_start, now)
    if sales_end is not None and now >= sales_end:
        return SalesEnded()
    return None
