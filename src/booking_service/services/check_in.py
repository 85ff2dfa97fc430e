"""Checking tickets in at the door: the event's owner scans a holder's ticket code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import run_transaction
from booking_service.errors import AlreadyCheckedIn, EventNotFound, NotEventOwner, TicketNotFound
from booking_service.models import BookingStatus, Event, HistoryAction
from booking_service.repositories import bookings, events, users
from booking_service.services.line import EventChanges
from booking_service.ticket_codes import TicketCodes


@dataclass(frozen=True, slots=True)
class TicketCheckedIn:
    booking_id: int
    user_id: int
    username: str
    quantity: int
    checked_in_at: datetime


class CheckInService:
    def __init__(
        self, session: AsyncSession, *, ticket_codes: TicketCodes, lock_retries: int
    ) -> None:
        self._session = session
        self._codes = ticket_codes
        self._retries = lock_retries

    async def check_in(self, *, owner_id: int, event_id: int, code: str) -> TicketCheckedIn:
        """Check the ticket with this code in, once. Under the event's lock, so two doors
        scanning one code at once are served one after the other: the first checks it in, the
        second is told when that happened.

        A code that was never issued, whose ticket was given back or moved to another holder,
        or that belongs to another event, gets one answer: TicketNotFound.
        """
        seed = self._codes.seed_of(code)  # the tag is checked before any lock is taken

        async def work() -> TicketCheckedIn:
            session = self._session
            event = await events.get_event_for_update(session, event_id)
            if event is None:
                raise EventNotFound()
            if event.owner_id != owner_id:
                raise NotEventOwner()
            ticket = None
            if seed is not None:
                ticket = await bookings.ticket_for_update(
                    session, event_id=event_id, ticket_seed=seed
                )
            if ticket is None or ticket.status is not BookingStatus.CONFIRMED:
                raise TicketNotFound()
            if ticket.checked_in_at is not None:
                raise AlreadyCheckedIn(ticket.checked_in_at)
            changes = EventChanges(
                # The whole booking is let in: all its tickets.
                event,
                fields={Event.checked_in_count.key: Event.checked_in_count + ticket.quantity},
            )
            await bookings.check_in(session, ticket.id, changes.now)
            changes.record(ticket, HistoryAction.CHECKED_IN)
            await changes.write(session)
            username = await users.get_username(session, ticket.user_id)
            assert username is not None  # the booking refers to it
            return TicketCheckedIn(
                ticket.id, ticket.user_id, username, ticket.quantity, changes.now
            )

        return await run_transaction(self._session, work, retries=self._retries)
