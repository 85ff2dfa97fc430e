"""Booking tickets, with concurrent bookings of one event grouped into one transaction.

A flash sale sends thousands of bookings at one event row, and every booking must hold that
row's lock while it decides. One transaction per booking caps throughput at what one lock can
do per second (round trips while locked, see research/perf-baseline.md). So, within a worker,
bookings of the same event that arrive while a transaction for that event is running wait in
a queue; when it commits, the next transaction takes everything queued at once: one lock, one
multi-row INSERT of claims and one of their history, one counter UPDATE, one COMMIT for the
whole group. Nobody waits on purpose:
a lone booking runs at once, and groups form only when bookings are already queueing.

Every caller gets its own answer, only after the commit that made it durable, and places in
line follow arrival order within the group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.db import is_duplicate_key, is_missing_reference, run_transaction
from booking_service.errors import (
    AccountGone,
    AlreadyBooked,
    AppError,
    EventCancelled,
    EventClosed,
    EventNotFound,
)
from booking_service.models import BookingStatus, EventState, HistoryAction
from booking_service.models.types import utcnow
from booking_service.repositories import bookings, events, history, users
from booking_service.repositories.bookings import NewClaim
from booking_service.repositories.events import LockedEvent
from booking_service.repositories.history import NewEntry
from booking_service.services.idempotency import ResultHook

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BookResult:
    booking_id: int
    status: BookingStatus
    position: int | None = None  # 1-based place in line when waitlisted


@dataclass(slots=True)
class _Request:
    user_id: int
    future: asyncio.Future[BookResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve(self, outcome: BookResult | BaseException) -> None:
        if self.future.done():  # the caller went away; the booking itself stands
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


@dataclass(slots=True)
class QueueStats:
    transactions: int = 0  # booking transactions committed or failed
    bookings: int = 0  # bookings they served (requests, duplicates included)
    largest_group: int = 0


class BookingQueue:
    """One per worker. `max_batch=1` turns grouping off: every booking is its own transaction."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        max_batch: int,
        lock_retries: int,
    ) -> None:
        self._session_factory = session_factory
        self._max_batch = max_batch
        self._retries = lock_retries
        self._queues: dict[int, list[_Request]] = {}
        self._drainers: set[asyncio.Task[None]] = set()
        self.stats = QueueStats()

    async def book(self, *, user_id: int, event_id: int) -> BookResult:
        if self._max_batch <= 1:
            return await self._book_one(self._session_factory(), user_id, event_id)
        request = _Request(user_id)
        queue = self._queues.get(event_id)
        if queue is None:
            # No transaction for this event is running here: start one, which keeps draining
            # the queue until it is empty.
            self._queues[event_id] = [request]
            task = asyncio.create_task(self._drain(event_id))
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)
        else:
            queue.append(request)
        return await request.future

    async def book_alone(
        self, *, user_id: int, event_id: int, then: ResultHook[BookResult]
    ) -> BookResult:
        """One booking in a transaction of its own that also runs `then(session, result)`:
        for a booking whose answer must commit with it (Idempotency-Key). Never grouped."""
        return await self._book_one(self._session_factory(), user_id, event_id, then)

    async def _drain(self, event_id: int) -> None:
        queue = self._queues[event_id]
        # One session for every transaction of this drain; each transaction ends (commit or
        # rollback) inside run_transaction, handing its connection back between groups.
        session = self._session_factory()
        try:
            while queue:
                # One turn of the event loop first: requests already read from their sockets
                # reach the queue and join this group instead of waiting for the next.
                await asyncio.sleep(0)
                group = queue[: self._max_batch]
                del queue[: self._max_batch]
                await self._serve(session, event_id, group)
        finally:
            # No await between the last emptiness check and this line, so no booking can
            # slip into a queue that nobody drains.
            del self._queues[event_id]
            for request in queue:  # only if _serve itself blew up
                request.resolve(RuntimeError("booking queue stopped"))

    async def _serve(self, session: AsyncSession, event_id: int, group: list[_Request]) -> None:
        self.stats.transactions += 1
        self.stats.bookings += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        try:
            if len(group) == 1:
                outcomes: Sequence[BookResult | AppError] = [
                    await self._book_one_safely(session, group[0].user_id, event_id)
                ]
            else:
                outcomes = await self._book_group(session, event_id, group)
        except Exception as exc:  # the database is gone, retries ran out, ...
            for request in group:
                request.resolve(exc)
            return
        for request, outcome in zip(group, outcomes, strict=True):
            request.resolve(outcome)

    async def _book_one_safely(
        self, session: AsyncSession, user_id: int, event_id: int
    ) -> BookResult | AppError:
        try:
            return await self._book_one(session, user_id, event_id)
        except AppError as exc:
            return exc

    # One booking, one transaction.

    async def _book_one(
        self,
        session: AsyncSession,
        user_id: int,
        event_id: int,
        then: ResultHook[BookResult] | None = None,
    ) -> BookResult:
        async def work() -> BookResult:
            result = await _book_one(session, user_id, event_id)
            if then is not None:
                await then(session, result)
            return result

        try:
            return await run_transaction(session, work, retries=self._retries)
        except IntegrityError as exc:
            # The whole transaction rolled back, the ticket count with it.
            raise _claim_refused(exc) from exc

    # Many bookings of one event, one transaction.

    async def _book_group(
        self, session: AsyncSession, event_id: int, group: list[_Request]
    ) -> list[BookResult | AppError]:
        first_of_user: dict[int, int] = {}
        repeats: list[int] = []  # the same user twice in one group: settled after the group
        for index, request in enumerate(group):
            if request.user_id in first_of_user:
                repeats.append(index)
            else:
                first_of_user[request.user_id] = index
        unique = [group[index] for index in first_of_user.values()]
        outcomes: list[BookResult | AppError | None] = [None] * len(group)
        try:
            results = await run_transaction(
                session,
                lambda: _book_group(session, event_id, [r.user_id for r in unique]),
                retries=self._retries,
            )
        except IntegrityError:
            # A user of the group vanished; rare enough to redo everyone one by one, where
            # each gets the answer that fits them.
            log.info("group booking on event %s refused, booking one by one", event_id)
            results = [await self._book_one_safely(session, r.user_id, event_id) for r in unique]
        for index, result in zip(first_of_user.values(), results, strict=True):
            outcomes[index] = result
        for index in repeats:
            outcomes[index] = await self._book_one_safely(session, group[index].user_id, event_id)
        return [outcome for outcome in outcomes if outcome is not None]


def _claim_refused(exc: IntegrityError) -> Exception:
    if is_duplicate_key(exc):
        return AlreadyBooked()
    if is_missing_reference(exc):
        return AccountGone()
    return exc


def _refusal(event: LockedEvent | None) -> type[AppError] | None:
    """Why this event takes no booking, if it takes none."""
    if event is None:
        return EventNotFound
    if event.state is EventState.CANCELLED:
        return EventCancelled
    if event.state is EventState.CLOSED:
        return EventClosed
    return None


async def _book_one(session: AsyncSession, user_id: int, event_id: int) -> BookResult:
    # Fast path: one conditional UPDATE both locks the event row and takes a ticket.
    if await events.take_ticket(session, event_id):
        await _require_open_account(session, user_id)
        return await _confirm(session, user_id, event_id)
    event = await events.get_event_for_update(session, event_id)
    # A closed account is told so first, as the token guard would have.
    await _require_open_account(session, user_id)
    refusal = _refusal(event)
    if refusal is not None:
        raise refusal()
    assert event is not None
    if event.available > 0:  # a ticket came back between the two statements
        await events.take_ticket(session, event_id)
        return await _confirm(session, user_id, event_id)
    booking_id = await bookings.add_waitlisted(
        session, event_id=event_id, user_id=user_id, line_seq=event.next_line_seq
    )
    await events.join_line(session, event_id)
    await _record(session, event_id, [NewEntry(booking_id, user_id, HistoryAction.WAITLISTED)])
    # Everyone in line came before, so the newcomer is last.
    return BookResult(booking_id, BookingStatus.WAITLISTED, position=event.waiting_count + 1)


async def _require_open_account(session: AsyncSession, user_id: int) -> None:
    # The booking route trusts the token alone; whether its account is still open is decided
    # here, under the event's lock and in the booking's own transaction (a closed account
    # rolls everything back, the ticket taken with it).
    if not await users.lock_open_accounts(session, [user_id]):
        raise AccountGone()


async def _confirm(session: AsyncSession, user_id: int, event_id: int) -> BookResult:
    booking_id = await bookings.add_confirmed(session, event_id=event_id, user_id=user_id)
    await _record(session, event_id, [NewEntry(booking_id, user_id, HistoryAction.BOOKED)])
    return BookResult(booking_id, BookingStatus.CONFIRMED)


async def _record(session: AsyncSession, event_id: int, entries: list[NewEntry]) -> None:
    await history.add_entries(session, event_id=event_id, entries=entries, at=utcnow())


async def _book_group(
    session: AsyncSession, event_id: int, user_ids: list[int]
) -> list[BookResult | AppError]:
    """Book for distinct users in this order, under one lock of the event row.

    A constant number of statements whatever the group's size: lock the event, lock the open
    accounts, find holders, insert the claims, read their ids, insert their history, update
    the counters.
    """
    event = await events.get_event_for_update(session, event_id)
    open_accounts = await users.lock_open_accounts(session, user_ids)
    refusal = _refusal(event)
    if refusal is not None:
        # A closed account is told so first, as the token guard would have.
        return [refusal() if u in open_accounts else AccountGone() for u in user_ids]
    assert event is not None
    holders = await bookings.live_claimants(session, event_id=event_id, user_ids=user_ids)
    claims: list[NewClaim] = []
    taken = 0
    for user_id in user_ids:
        if user_id in holders or user_id not in open_accounts:
            continue
        if taken < event.available:
            claims.append(NewClaim(user_id, BookingStatus.CONFIRMED))
            taken += 1
        else:
            line_seq = event.next_line_seq + len(claims) - taken
            claims.append(NewClaim(user_id, BookingStatus.WAITLISTED, line_seq))
    if claims:
        booking_ids = await bookings.add_claims(session, event_id=event_id, claims=claims)
        await _record(
            session,
            event_id,
            [
                NewEntry(booking_ids[claim.user_id], claim.user_id, CLAIM_ACTIONS[claim.status])
                for claim in claims
            ],
        )
        await events.apply_claims(session, event_id, taken=taken, joined=len(claims) - taken)
    outcomes: dict[int, BookResult] = {}
    for claim in claims:
        position = None
        if claim.line_seq is not None:
            position = event.waiting_count + claim.line_seq - event.next_line_seq + 1
        outcomes[claim.user_id] = BookResult(booking_ids[claim.user_id], claim.status, position)
    return [
        outcomes[user_id]
        if user_id in outcomes
        else AlreadyBooked()
        if user_id in holders
        else AccountGone()
        for user_id in user_ids
    ]


CLAIM_ACTIONS = {
    BookingStatus.CONFIRMED: HistoryAction.BOOKED,
    BookingStatus.WAITLISTED: HistoryAction.WAITLISTED,
}
