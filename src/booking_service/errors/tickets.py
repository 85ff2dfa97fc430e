"""Errors of tickets once confirmed: checking in at the door, transferring to another user."""

from __future__ import annotations

from datetime import datetime

from booking_service.errors.base import Conflict, Forbidden, NotFound


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
