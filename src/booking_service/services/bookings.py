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
from booking_service.errors import EventNotFound, NothingToCancel
from booking_service.models import BookingStatus, HistoryAction
from booking_service.repositories import bookings, events, history
from booking_service.repositories.bookings import UserBooking
from booking_service.repositories.history import HistoryItem
from booking_service.services.booking_queue import BookingQueue, BookResult
from booking_service.services.idempotency import ResultHook
from booking_service.services.waiting_list import (
    EventChanges,
    HandedOn,
    give_up_offers,
    hand_on,
    is_lapsed,
)


class CancelOutcome(enum.StrEnum):
    REASSIGNED = "reassigned"  # the ticket went to the first person in line
    OFFERED = "offered"  # the ticket is offered to the first person in line
    RELEASED = "released"  # the ticket went back to the pool
    LEFT_WAITING_LIST = "left_waiting_list"  # the user gave up a place in line


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


def cancel_outcome(handed_on: HandedOn) -> CancelOutcome:
    if handed_on.promoted:
        return CancelOutcome.REASSIGNED
    if handed_on.offered:
        return CancelOutcome.OFFERED
    return CancelOutcome.RELEASED


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
        event = await events.get_event_for_update(session, event_id)
        if event is None:
            raise EventNotFound()
        mine = await bookings.get_active_for_update(session, event_id=event_id, user_id=user_id)
        if mine is None:
            raise NothingToCancel()
        changes = EventChanges(event)
        if mine.status is BookingStatus.WAITLISTED:
            await bookings.end(session, [mine.id], BookingStatus.LEFT, changes.now)
            changes.record(mine, HistoryAction.LEFT)
            changes.waiting -= 1
            await changes.write(session)
            return CancelOutcome.LEFT_WAITING_LIST
        if mine.status is BookingStatus.OFFERED:
            # Cancelling an open offer turns it down (or, past its deadline, lets it lapse).
            lapsed = is_lapsed(mine, changes.now)
            action = HistoryAction.EXPIRED if lapsed else HistoryAction.DECLINED
            handed_on = await give_up_offers(session, changes, [mine], action)
        else:
            await bookings.end(session, [mine.id], BookingStatus.CANCELLED, changes.now)
            changes.record(mine, HistoryAction.CANCELLED)
            # The freed ticket goes to the head of the line at once (or is offered to them):
            # it is never free while someone waits.
            handed_on = await hand_on(session, changes, 1)
        await changes.write(session)
        return cancel_outcome(handed_on)

    async def list_mine(self, user_id: int) -> Sequence[UserBooking]:
        return await run_transaction(
            self._session,
            lambda: bookings.list_active_for_user(self._session, user_id),
            retries=self._retries,
            read_only=True,
        )

    async def history_mine(
        self, user_id: int, *, limit: int, offset: int
    ) -> tuple[list[HistoryItem], int]:
        return await run_transaction(
            self._session,
            lambda: history.list_for_user(self._session, user_id, limit=limit, offset=offset),
            retries=self._retries,
            read_only=True,
        )
