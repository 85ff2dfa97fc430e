"""When an event takes bookings: its state and its sale window, judged by the database's clock.

`now` is always a reading of the database's clock (models.types.db_utcnow) taken by the
statement that read the event, never a replica's own clock: replicas whose clocks drift apart
still agree on the moment sales open and end.
"""

from __future__ import annotations

import enum
from datetime import datetime

from booking_service.errors import (
    AppError,
    EventCancelled,
    EventClosed,
    SalesEnded,
    SalesNotStarted,
)
from booking_service.models import EventState


class ShownState(enum.StrEnum):
    """An event's state as clients see it: the stored state, with the sale window applied."""

    UPCOMING = "upcoming"  # open, but sales have not started yet
    OPEN = "open"
    CLOSED = "closed"  # closed by its owner, or its sales have ended
    CANCELLED = "cancelled"


def shown_state(
    state: EventState, sales_start: datetime | None, sales_end: datetime | None, now: datetime
) -> ShownState:
    if state is not EventState.OPEN:
        return ShownState(state.value)
    if sales_start is not None and now < sales_start:
        return ShownState.UPCOMING
    if sales_end is not None and now >= sales_end:
        return ShownState.CLOSED
    return ShownState.OPEN


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
