"""Booking, cancelling and the caller's own bookings and history.

Bookings and cancels go through the worker's BookingQueue, which serves them in short
transactions (grouped when they arrive together). Every transaction touches the event row
first (a locking UPDATE or SELECT ... FOR UPDATE) and only then the booking rows, so two of them
can never wait on each other in opposite order. Decisions are taken from the locked row, never
from an earlier read.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service import metrics
from booking_service.db import run_transaction
from booking_service.models import BookingStatus
from booking_service.repositories import bookings, history
from booking_service.repositories.bookings import UserBooking
from booking_service.repositories.history import HistoryItem
from booking_service.services.booking_queue import BookingQueue, BookResult
from booking_service.services.cancels import CancelOutcome
from booking_service.services.idempotency import ResultHook
from booking_service.ticket_codes import TicketCodes

# What each committed result counts as in the booking_outcomes metric.
BOOKED_OUTCOMES = {
    BookingStatus.CONFIRMED: metrics.BookingOutcome.BOOKED,
    BookingStatus.WAITLISTED: metrics.BookingOutcome.WAITLISTED,
}
CANCEL_OUTCOMES = {
    CancelOutcome.REASSIGNED: (metrics.BookingOutcome.CANCELLED, metrics.BookingOutcome.PROMOTED),
    CancelOutcome.OFFERED: (metrics.BookingOutcome.CANCELLED, metrics.BookingOutcome.OFFERED),
    CancelOutcome.RELEASED: (metrics.BookingOutcome.CANCELLED,),
    CancelOutcome.LEFT_WAITING_LIST: (metrics.BookingOutcome.LEFT_LINE,),
}


class BookingService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        booking_queue: BookingQueue,
        ticket_codes: TicketCodes,
        lock_retries: int,
    ) -> None:
        self._session = session
        self._queue = booking_queue
        self._codes = ticket_codes
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
        if then is None:
            outcome = await self._queue.cancel(user_id=user_id, event_id=event_id)
        else:
            outcome = await self._queue.cancel_alone(user_id=user_id, event_id=event_id, then=then)
        for counted in CANCEL_OUTCOMES[outcome]:
            metrics.count_booking(counted)
        return outcome

    async def list_mine(self, user_id: int) -> Sequence[UserBooking]:
        return await run_transaction(
            self._session,
            lambda: bookings.list_active_for_user(self._session, user_id),
            retries=self._retries,
            read_only=True,
            causal=True,  # a booking just made through another node is listed
        )

    def ticket_code(self, booking: UserBooking) -> str | None:
        """The code a confirmed ticket is let in with, for its holder's eyes only."""
        if booking.status is not BookingStatus.CONFIRMED or booking.ticket_seed is None:
            return None
        return self._codes.code(booking.ticket_seed)

    async def history_mine(
        self, user_id: int, *, limit: int, offset: int
    ) -> tuple[list[HistoryItem], int]:
        return await run_transaction(
            self._session,
            lambda: history.list_for_user(self._session, user_id, limit=limit, offset=offset),
            retries=self._retries,
            read_only=True,
            causal=True,
        )
