"""Booking, cancelling and the caller's own bookings and history.

Bookings and cancels go through the worker's Coalescer (services.coalescer), which serves
them in short transactions, grouped when they arrive together, by the rules and in the lock
order of services.booking_rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service import metrics
from booking_service.db import run_transaction
from booking_service.models import BookingStatus
from booking_service.repositories import booking_lists, history
from booking_service.repositories.booking_lists import UserBooking
from booking_service.repositories.history import HistoryItem
from booking_service.services.booking_rules import (
    Answer,
    BookOrCancel,
    BookResult,
    RequestKind,
    answer_from_kept,
)
from booking_service.services.cancels import Cancelled, CancelOutcome
from booking_service.services.coalescer import Coalescer
from booking_service.services.idempotency import HeldKey
from booking_service.ticket_codes import TicketCodes

# What each committed answer counts as in the booking_outcomes metric.
BOOKED_AS = {
    BookingStatus.CONFIRMED: (metrics.BookingOutcome.BOOKED,),
    BookingStatus.WAITLISTED: (metrics.BookingOutcome.WAITLISTED,),
}
CANCELLED_AS = {
    CancelOutcome.REASSIGNED: (metrics.BookingOutcome.CANCELLED, metrics.BookingOutcome.PROMOTED),
    CancelOutcome.OFFERED: (metrics.BookingOutcome.CANCELLED, metrics.BookingOutcome.OFFERED),
    CancelOutcome.RELEASED: (metrics.BookingOutcome.CANCELLED,),
    CancelOutcome.LEFT_LINE: (metrics.BookingOutcome.LEFT_LINE,),
}


class BookingService:
    def __init__(
        self,
        session: Callable[[], AsyncSession],
        *,
        coalescer: Coalescer,
        ticket_codes: TicketCodes,
        lock_retries: int,
    ) -> None:
        # The request's session, made only when asked for: booking and cancelling never use it
        # (the coalescer runs them in sessions of its own), and making one costs ~13 us, about
        # 2% of a booking's CPU.
        self._session = session
        self._coalescer = coalescer
        self._codes = ticket_codes
        self._retries = lock_retries

    async def book(
        self, *, user_id: int, event_id: int, quantity: int = 1, key: HeldKey | None = None
    ) -> BookResult:
        """`quantity` tickets (all or nothing), or else a place on the waiting list for them.
        With an idempotency `key`, the result is kept with it in the booking's own transaction."""
        request = BookOrCancel(RequestKind.BOOK, event_id, user_id, quantity)
        result = await self._serve(request, key)
        assert isinstance(result, BookResult)
        return result

    async def cancel(
        self,
        *,
        user_id: int,
        event_id: int,
        quantity: int | None = None,
        key: HeldKey | None = None,
    ) -> Cancelled:
        """Give tickets or an offer back, or leave the waiting list: the whole claim, or
        `quantity` of its tickets; `key` as for `book`."""
        request = BookOrCancel(RequestKind.CANCEL, event_id, user_id, quantity)
        outcome = await self._serve(request, key)
        assert isinstance(outcome, Cancelled)
        return outcome

    async def _serve(self, request: BookOrCancel, key: HeldKey | None) -> Answer:
        if key is not None and key.kept is not None:
            # A retry of a request that finished: its first result again, and nothing done.
            return answer_from_kept(request.kind, key.kept.result)
        answer = await self._coalescer.serve(request, key)
        # Counted once committed, never per attempt, nor per retry of the same request.
        counted_as = (
            BOOKED_AS[answer.status]
            if isinstance(answer, BookResult)
            else CANCELLED_AS[answer.outcome]
        )
        for counted in counted_as:
            metrics.count_booking(counted)
        return answer

    async def list_mine(self, user_id: int) -> Sequence[UserBooking]:
        session = self._session()
        return await run_transaction(
            session,
            lambda: booking_lists.list_active_for_user(session, user_id),
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
        session = self._session()
        return await run_transaction(
            session,
            lambda: history.list_for_user(session, user_id, limit=limit, offset=offset),
            retries=self._retries,
            read_only=True,
            causal=True,
        )
