"""Booking and cancelling tickets, with concurrent requests grouped into shared transactions.

A flash sale sends thousands of bookings (and, once sold out, cancels) at one event row, and
every one must hold that row's lock while it decides. One transaction per request caps
throughput at what one lock can do per second (round trips while locked, see
research/perf-baseline.md), and every transaction costs its round trips and client CPU even
where nothing contends. So, within a worker, requests that arrive while a transaction of this
queue is running wait in a queue; when it commits, the next transaction takes everything
queued at once, whatever events they are for: it locks those events' rows (in ascending id
order, like every multi-event lock), serves the cancels of each event set-based (see
services.cancels), then the bookings with one multi-row INSERT of claims and one of their
history, one counter UPDATE and one COMMIT for the whole group. Nobody waits on purpose: a lone
request runs at once, and groups form only when requests are already queueing.

Every caller gets its own answer, only after the commit that made it durable, and an error
only for what failed for it: when a group is served again one request at a time (or a repeat
runs after it), a request that fails there is answered with its failure alone. Within a group,
cancels come before bookings (freed tickets go to the line first), and places in line follow
arrival order. A second request for the same user and event in one group runs after the group,
on its own, so it sees what the first one did.

On a Galera cluster the other nodes' workers write the same event rows: a group that loses
certification to one of them is retried whole, so after a conflict the next groups are half as
large (down to one request), and double again with each group that commits at the first try.
Every transaction here is causal there: a cancel finds a booking made through another node.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.db import (
    RETRIES_USED,
    is_duplicate_key,
    is_missing_reference,
    run_transaction,
)
from booking_service.errors import (
    AccountGone,
    AlreadyBooked,
    AppError,
    EventNotFound,
    SalesEnded,
    SalesNotStarted,
)
from booking_service.models import BookingStatus, HistoryAction
from booking_service.models.types import utcnow
from booking_service.repositories import bookings, events, history, users
from booking_service.repositories.bookings import EventUser, NewClaim
from booking_service.repositories.events import ClaimCounts, LockedEvent
from booking_service.repositories.history import NewEntry
from booking_service.services.cancels import CancelOutcome, cancel_claims
from booking_service.services.idempotency import ResultHook
from booking_service.services.sale_window import booking_refusal
from booking_service.services.waiting_list import EventChanges

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BookResult:
    booking_id: int
    status: BookingStatus
    position: int | None = None  # 1-based place in line when waitlisted


class RequestKind(enum.Enum):
    BOOK = "book"
    CANCEL = "cancel"


Answer = BookResult | CancelOutcome


@dataclass(slots=True)
class _Request:
    kind: RequestKind
    event_id: int
    user_id: int
    future: asyncio.Future[Answer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def key(self) -> EventUser:
        return (self.event_id, self.user_id)

    def resolve(self, outcome: Answer | BaseException) -> None:
        if self.future.done():  # the caller went away; what was done stands
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


@dataclass(slots=True)
class QueueStats:
    transactions: int = 0  # transactions of this queue, committed or failed
    requests: int = 0  # bookings and cancels they served (repeats included)
    largest_group: int = 0
    group_limit: int = 0  # most requests the next group may take (halved after a conflict)


class GroupLimit:
    """Most requests the next group may take: halved after a group that needed a retry (a
    conflict, from this node or another), doubled after one that committed at the first try."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.current = most

    def after(self, retries: int) -> int:
        if retries:
            self.current = max(1, self.current // 2)
        else:
            self.current = min(self.most, self.current * 2)
        return self.current


class BookingQueue:
    """One per worker. `max_batch=1` turns grouping off: every request is its own transaction."""

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
        self._group_limit = GroupLimit(max_batch)
        self._queue: list[_Request] = []
        self._drainer: asyncio.Task[None] | None = None
        self.stats = QueueStats()

    async def book(self, *, user_id: int, event_id: int) -> BookResult:
        result = await self._submit(_Request(RequestKind.BOOK, event_id, user_id))
        assert isinstance(result, BookResult)
        return result

    async def cancel(self, *, user_id: int, event_id: int) -> CancelOutcome:
        outcome = await self._submit(_Request(RequestKind.CANCEL, event_id, user_id))
        assert isinstance(outcome, CancelOutcome)
        return outcome

    async def book_alone(
        self, *, user_id: int, event_id: int, then: ResultHook[BookResult]
    ) -> BookResult:
        """One booking in a transaction of its own that also runs `then(session, result)`:
        for a booking whose answer must commit with it (Idempotency-Key). Never grouped."""
        return await self._book_one(self._session_factory(), user_id, event_id, then)

    async def cancel_alone(
        self, *, user_id: int, event_id: int, then: ResultHook[CancelOutcome]
    ) -> CancelOutcome:
        """One cancel in a transaction of its own that also runs `then(session, outcome)`."""
        return await self._cancel_one(self._session_factory(), user_id, event_id, then)

    async def _submit(self, request: _Request) -> Answer:
        if self._max_batch <= 1:
            return await self._one(self._session_factory(), request)
        self._queue.append(request)
        if self._drainer is None:
            # No transaction of this queue is running here: start one, which keeps draining
            # the queue until it is empty.
            self._drainer = asyncio.create_task(self._drain())
        return await request.future

    async def _drain(self) -> None:
        queue = self._queue
        # One session for every transaction of this drain; each transaction ends (commit or
        # rollback) inside run_transaction, handing its connection back between groups.
        session = self._session_factory()
        try:
            while queue:
                # One turn of the event loop first: requests already read from their sockets
                # reach the queue and join this group instead of waiting for the next.
                await asyncio.sleep(0)
                limit = self._group_limit.current
                group = queue[:limit]
                del queue[:limit]
                await self._serve(session, group)
                self.stats.group_limit = self._group_limit.after(session.info.get(RETRIES_USED, 0))
        finally:
            # No await between the last emptiness check and this line, so no booking can
            # slip into a queue that nobody drains.
            self._drainer = None
            for request in queue:  # only if _serve itself blew up
                request.resolve(RuntimeError("booking queue stopped"))
            queue.clear()

    async def _serve(self, session: AsyncSession, group: list[_Request]) -> None:
        self.stats.transactions += 1
        self.stats.requests += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        try:
            if len(group) == 1:
                outcomes: Sequence[Answer | Exception] = [await self._one_safely(session, group[0])]
            else:
                outcomes = await self._serve_group(session, group)
        except Exception as exc:  # the group's one transaction failed: nobody's claim committed
            for request in group:
                request.resolve(exc)
            return
        for request, outcome in zip(group, outcomes, strict=True):
            request.resolve(outcome)

    async def _one_safely(self, session: AsyncSession, request: _Request) -> Answer | Exception:
        """One request in a transaction of its own, and whatever it raises is its answer alone:
        beside it in the group, some requests may have committed already and others still wait
        their turn, and each of them gets the answer of what happened to it."""
        try:
            return await self._one(session, request)
        except Exception as exc:
            return exc

    # One request, one transaction.

    async def _one(self, session: AsyncSession, request: _Request) -> Answer:
        if request.kind is RequestKind.CANCEL:
            return await self._cancel_one(session, request.user_id, request.event_id)
        return await self._book_one(session, request.user_id, request.event_id)

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
            return await run_transaction(session, work, retries=self._retries, causal=True)
        except IntegrityError as exc:
            # The whole transaction rolled back, the ticket count with it.
            raise _claim_refused(exc) from exc

    async def _cancel_one(
        self,
        session: AsyncSession,
        user_id: int,
        event_id: int,
        then: ResultHook[CancelOutcome] | None = None,
    ) -> CancelOutcome:
        async def work() -> CancelOutcome:
            event = await events.get_event_for_update(session, event_id)
            if event is None:
                raise EventNotFound()
            changes = EventChanges(event)
            outcome = (await cancel_claims(session, changes, [user_id]))[user_id]
            if isinstance(outcome, AppError):
                raise outcome
            await changes.write(session)
            if then is not None:
                await then(session, outcome)
            return outcome

        return await run_transaction(session, work, retries=self._retries, causal=True)

    # Many requests, one transaction.

    async def _serve_group(
        self, session: AsyncSession, group: list[_Request]
    ) -> list[Answer | Exception]:
        first: dict[EventUser, int] = {}
        repeats: list[int] = []  # the same user and event twice in one group: served after it
        for index, request in enumerate(group):
            if request.key in first:
                repeats.append(index)
            else:
                first[request.key] = index
        unique = [group[index] for index in first.values()]
        outcomes: list[Answer | Exception | None] = [None] * len(group)
        results: Sequence[Answer | Exception]
        try:
            results = await run_transaction(
                session,
                lambda: _serve_together(session, unique),
                retries=self._retries,
                causal=True,
            )
        except DBAPIError as exc:
            # Refused for a reason the group did not foresee (lock conflicts and an unreachable
            # database are ServiceBusy by now, and concern everyone), which may concern one
            # request alone; rare enough to redo everyone one by one, where each gets the
            # answer that fits them.
            log.info("grouped transaction refused (%s), serving its requests one by one", exc.orig)
            results = [await self._one_safely(session, r) for r in unique]
        for index, result in zip(first.values(), results, strict=True):
            outcomes[index] = result
        for index in repeats:
            outcomes[index] = await self._one_safely(session, group[index])
        return [outcome for outcome in outcomes if outcome is not None]


async def _serve_together(
    session: AsyncSession, requests: list[_Request]
) -> list[Answer | AppError]:
    """Serve distinct (event, user) requests in one transaction: the cancels of each event,
    then the bookings."""
    outcomes: dict[EventUser, Answer | AppError] = {}
    cancels: dict[int, list[int]] = {}  # event id -> users, in arrival order
    for request in requests:
        if request.kind is RequestKind.CANCEL:
            cancels.setdefault(request.event_id, []).append(request.user_id)
    locked: dict[int, LockedEvent] | None = None
    if cancels:
        # Every event of the group, bookings' too, locked now and in ascending order.
        locked = await events.get_events_for_update(session, {r.event_id for r in requests})
        for event_id in sorted(cancels):
            event = locked.get(event_id)
            if event is None:
                for user_id in cancels[event_id]:
                    outcomes[event_id, user_id] = EventNotFound()
                continue
            changes = EventChanges(event)
            for user_id, outcome in (
                await cancel_claims(session, changes, cancels[event_id])
            ).items():
                outcomes[event_id, user_id] = outcome
            await changes.write(session)
            # The bookings below decide from the counters as the cancels left them.
            locked[event_id] = changes.with_counters()
    bookings_wanted = [r.key for r in requests if r.kind is RequestKind.BOOK]
    if bookings_wanted:
        results = await _book_group(session, bookings_wanted, locked)
        outcomes.update(zip(bookings_wanted, results, strict=True))
    return [outcomes[r.key] for r in requests]


def _claim_refused(exc: IntegrityError) -> Exception:
    if is_duplicate_key(exc):
        return AlreadyBooked()
    if is_missing_reference(exc):
        return AccountGone()
    return exc


def _refusal(event: LockedEvent | None) -> AppError | None:
    """Why this event takes no booking, if it takes none: judged from its locked row and the
    database's clock read with it."""
    if event is None:
        return EventNotFound()
    return booking_refusal(event.state, event.sales_start, event.sales_end, event.now)


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
        raise refusal
    assert event is not None
    if event.available > 0:  # a ticket came back, or sales opened, between the two statements
        if await events.take_ticket(session, event_id):
            return await _confirm(session, user_id, event_id)
        # Under the lock only the clock moves: past sales_end since the row was read (or, on
        # a clock set back, before sales_start again).
        raise (
            SalesEnded()
            if event.sales_end is not None
            else SalesNotStarted(event.sales_start, event.now)
        )
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
    session: AsyncSession,
    requests: list[EventUser],
    locked: Mapping[int, LockedEvent] | None = None,
) -> list[BookResult | AppError]:
    """Book each (event, user) in this order, under one lock of each event's row: taken here,
    or already taken by this transaction and passed in `locked` as it stands now.

    A constant number of statements whatever the group's size and however many events it
    touches: lock the events, lock the open accounts, find holders, insert the claims, read
    their ids, insert their history, update the counters.
    """
    if locked is None:
        locked = await events.get_events_for_update(session, {event_id for event_id, _ in requests})
    open_accounts = await users.lock_open_accounts(session, {user_id for _, user_id in requests})
    holders = await bookings.live_claimants(session, requests)
    # The database's clock, read with the locks (one statement, so one reading for all).
    now = next(iter(locked.values())).now if locked else utcnow()
    claims: list[NewClaim] = []
    counts: dict[int, ClaimCounts] = {event_id: ClaimCounts() for event_id in locked}
    refusals: dict[EventUser, AppError] = {}
    for event_id, user_id in requests:
        event = locked.get(event_id)
        refusal = _refusal(event)
        if user_id not in open_accounts:
            # A closed account is told so first, as the token guard would have.
            refusals[event_id, user_id] = AccountGone()
        elif refusal is not None:
            refusals[event_id, user_id] = refusal
        elif (event_id, user_id) in holders:
            refusals[event_id, user_id] = AlreadyBooked()
        else:
            assert event is not None
            count = counts[event_id]
            if count.taken < event.available:
                claims.append(NewClaim(event_id, user_id, BookingStatus.CONFIRMED))
                count.taken += 1
            else:
                line_seq = event.next_line_seq + count.joined
                claims.append(NewClaim(event_id, user_id, BookingStatus.WAITLISTED, line_seq))
                count.joined += 1
    if claims:
        booking_ids = await bookings.add_claims(session, claims, at=now)
        await history.add_entries_of_events(
            session,
            [
                (
                    claim.event_id,
                    NewEntry(
                        booking_ids[claim.event_id, claim.user_id],
                        claim.user_id,
                        CLAIM_ACTIONS[claim.status],
                    ),
                )
                for claim in claims
            ],
            at=now,
        )
        await events.apply_claims(session, counts)
    outcomes: dict[EventUser, BookResult | AppError] = dict(refusals)
    for claim in claims:
        position = None
        if claim.line_seq is not None:
            event = locked[claim.event_id]
            position = event.waiting_count + claim.line_seq - event.next_line_seq + 1
        outcomes[claim.event_id, claim.user_id] = BookResult(
            booking_ids[claim.event_id, claim.user_id], claim.status, position
        )
    return [outcomes[key] for key in requests]


CLAIM_ACTIONS = {
    BookingStatus.CONFIRMED: HistoryAction.BOOKED,
    BookingStatus.WAITLISTED: HistoryAction.WAITLISTED,
}
