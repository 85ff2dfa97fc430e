"""Booking, cancelling and the waiting list: each public method is one short transaction.

Every transaction touches the event row first (a locking UPDATE or SELECT ... FOR UPDATE) and
only then the booking rows, so two of them can never wait on each other in opposite order.
Decisions are taken from the locked row, never from an earlier read.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service import metrics
from booking_service.db import run_transaction
from booking_service.errors import (
    EventNotFound,
    NothingToCancel,
)
from booking_service.models import BookingStatus
from booking_service.repositories import bookings, events, outbox
from booking_service.repositories.bookings import UserBooking
from booking_service.services.booking_queue import BookingQueue, BookResult
from booking_service.services.idempotency import ResultHook


class CancelOutcome(enum.StrEnum):
    REASSIGNED = "reassigned"  # the ticket went to the first person in line
    RELEASED = "released"  # the ticket went back to the pool
    LEFT_WAITING_LIST = "left_waiting_list"  # the user gave up a place in line


# What each committed result counts as in the booking_outcomes metric.
BOOKED_OUTCOMES = {
    BookingStatus.CONFIRMED: metrics.BookingOutcome.BOOKED,
    BookingStatus.WAITLISTED: metrics.BookingOutcome.WAITLISTED,
}
CANCEL_OUTCOMES = {
    CancelOutcome.REASSIGNED: (metrics.BookingOutcome.CANCELLED, metrics.BookingOutcome.PROMOTED),
    CancelOutcome.RELEASED: (metrics.BookingOutcome.CANCELLED,),
    CancelOutcome.LEFT_WAITING_LIST: (metrics.BookingOutcome.LEFT_LINE,),
}


class BookingService:
    def __init__(
        self, session: AsyncSession, *, booking_queue: BookingQueue, lock_retries: int
    ) -> None:
        self._session = session
        self._queue = booking_queue
        self._retries = lock_retries

    async def book(
        self, *, user_id: int, event_id: int, then: ResultHook[BookResult] | None = None
    ) -> BookResult:
        """`then(session, result)`, if given, runs in the booking's transaction."""
        if then is None:
            result = await self._queue.book(user_id=user_id, event_id=event_id)
        else:
            result = await self._queue.book_alone(user_id=user_id, event_id=event_id, then=then)
        # Counted once committed, never per attempt.
        metrics.count_booking(BOOKED_OUTCOMES[result.status])
        return result

    async def cancel(
        self, *, user_id: int, event_id: int, then: ResultHook[CancelOutcome] | None = None
    ) -> CancelOutcome:
        """`then(session, outcome)`, if given, runs in the cancellation's transaction."""

        async def work() -> CancelOutcome:
            outcome = await self._cancel(user_id, event_id)
            if then is not None:
                await then(self._session, outcome)
            return outcome

        outcome = await run_transaction(self._session, work, retries=self._retries)
        for counted in CANCEL_OUTCOMES[outcome]:
            metrics.count_booking(counted)
        return outcome

    async def _cancel(self, user_id: int, event_id: int) -> CancelOutcome:
        session = self._session
        if await events.get_event_for_update(session, event_id) is None:
            raise EventNotFound()
        mine = await bookings.get_active_for_update(session, event_id=event_id, user_id=user_id)
        if mine is None:
            raise NothingToCancel()
        if mine.status is BookingStatus.WAITLISTED:
            await bookings.end(session, mine.id, BookingStatus.LEFT)
            await events.leave_line(session, event_id)
            return CancelOutcome.LEFT_WAITING_LIST
        await bookings.end(session, mine.id, BookingStatus.CANCELLED)
        first = await bookings.get_first_in_line_for_update(session, event_id)
        if first is None:
            await events.release_ticket(session, event_id)
            return CancelOutcome.RELEASED
        # The freed ticket goes straight to the head of the line: it is never free while
        # someone waits, so `available` stays untouched.
        promoted_at = await bookings.promote(session, first.id)
        await events.leave_line(session, event_id)
        # Announced by webhook, if and only if this transaction commits.
        await outbox.enqueue(
            session,
            outbox.BOOKING_PROMOTED,
            {
                "booking_id": first.id,
                "event_id": event_id,
                "user_id": first.user_id,
                "promoted_at": promoted_at,
            },
        )
        return CancelOutcome.REASSIGNED

    async def list_mine(self, user_id: int) -> Sequence[UserBooking]:
        return await run_transaction(
            self._session,
            lambda: bookings.list_active_for_user(self._session, user_id),
            retries=self._retries,
            read_only=True,
        )
