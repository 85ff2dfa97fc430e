"""Waiting-list offers: accepting or declining one, and letting lapsed ones expire.

An offer's deadline is judged only under the event's lock, from the locked rows, by whichever
transaction gets there first: the user accepting or declining, or the sweep any worker runs in
the background. So an offer expires once, its ticket is handed on once, and no process has to
stay alive for it to happen: a late accept finds the offer lapsed and expires it itself.
"""

from __future__ import annotations

import enum
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.db import run_transaction
from booking_service.errors import EventCancelled, EventNotFound, OfferExpired, OfferNotFound
from booking_service.models import BookingStatus, EventState, HistoryAction
from booking_service.repositories import bookings, events
from booking_service.repositories.bookings import LockedBooking
from booking_service.services.line import (
    EventChanges,
    expire_lapsed_offers,
    give_up_offers,
    is_lapsed,
)

log = logging.getLogger(__name__)

# Events whose lapsed offers one sweep handles; the next sweep takes the rest.
SWEEP_BATCH = 100


class Answer(enum.StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"


class _Outcome(enum.Enum):
    DONE = enum.auto()
    LAPSED = enum.auto()  # the offer had lapsed: it was expired, and that is committed


class OfferService:
    def __init__(self, session: AsyncSession, *, lock_retries: int) -> None:
        self._session = session
        self._retries = lock_retries

    async def accept(self, *, user_id: int, event_id: int) -> tuple[int, int]:
        """Take the offered tickets, all of them; returns the booking id and how many."""
        return await self._answer(user_id, event_id, Answer.ACCEPT)

    async def decline(self, *, user_id: int, event_id: int) -> None:
        """Turn the offer down; its tickets follow the line rule (services.line.hand_on)."""
        await self._answer(user_id, event_id, Answer.DECLINE)

    async def _answer(self, user_id: int, event_id: int, answer: Answer) -> tuple[int, int]:
        outcome, mine = await run_transaction(
            self._session,
            lambda: self._answer_locked(user_id, event_id, answer),
            retries=self._retries,
            causal=True,  # an offer just made through another node can be answered
        )
        if outcome is _Outcome.LAPSED:
            # Raised after the commit, so the expiry found on the way stays done.
            raise OfferExpired()
        return mine.id, mine.quantity

    async def _answer_locked(
        self, user_id: int, event_id: int, answer: Answer
    ) -> tuple[_Outcome, LockedBooking]:
        session = self._session
        event = await events.get_event_for_update(session, event_id)
        if event is None:
            raise EventNotFound()
        if event.state is EventState.CANCELLED:  # its offers were withdrawn with it
            raise EventCancelled()
        mine = await bookings.get_active_for_update(session, event_id=event_id, user_id=user_id)
        if mine is None or mine.status is not BookingStatus.OFFERED:
            await self._no_open_offer(user_id, event_id, mine)
        assert mine is not None
        changes = EventChanges(event)
        if is_lapsed(mine, changes.now):
            await expire_lapsed_offers(session, changes)
            await changes.write(session)
            return _Outcome.LAPSED, mine
        if answer is Answer.ACCEPT:
            await bookings.accept_offer(session, mine.id, changes.now)
            changes.record(mine, HistoryAction.ACCEPTED)
            changes.offered -= mine.quantity
        else:
            await give_up_offers(session, changes, [mine], HistoryAction.DECLINED)
        await changes.write(session)
        return _Outcome.DONE, mine

    async def _no_open_offer(self, user_id: int, event_id: int, mine: LockedBooking | None) -> None:
        """Raise the right error for someone without an open offer: 410 when their offer
        already expired (whoever expired it), else 404."""
        if mine is None:
            ended = await bookings.last_ended_status(
                self._session, event_id=event_id, user_id=user_id
            )
            if ended is BookingStatus.EXPIRED:
                raise OfferExpired()
        raise OfferNotFound()


class OfferSweeper:
    """Expires lapsed offers in the background. Every worker of every replica runs one; they
    may pick the same event at once, and the event's lock makes all but the first find nothing
    left to do."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        lock_retries: int,
    ) -> None:
        self._session_factory = session_factory
        self._retries = lock_retries

    async def sweep(self) -> int:
        """Expire the offers that have lapsed by now; returns how many this call expired."""
        async with self._session_factory() as session:
            event_ids = await run_transaction(
                session,
                lambda: bookings.events_with_lapsed_offers(session, limit=SWEEP_BATCH),
                retries=self._retries,
                read_only=True,
            )
        expired = 0
        for event_id in event_ids:
            try:
                expired += await self._expire(event_id)
            except Exception:
                # That event's failure is its own: the others' offers still expire now, and
                # its own are tried again by the next sweep.
                log.exception("could not expire the lapsed offers of event %s", event_id)
        return expired

    async def _expire(self, event_id: int) -> int:
        async with self._session_factory() as session:

            async def work() -> int:
                event = await events.get_event_for_update(session, event_id)
                if event is None:
                    return 0
                changes = EventChanges(event)
                expired = await expire_lapsed_offers(session, changes)
                await changes.write(session)
                return expired

            return await run_transaction(session, work, retries=self._retries)
