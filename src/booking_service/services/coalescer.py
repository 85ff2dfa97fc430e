"""Concurrent bookings and cancels of one worker, served together in shared transactions.

A flash sale sends thousands of bookings (and, once sold out, cancels) at one event row, and
every one must hold that row's lock while it decides. One transaction per request caps
throughput at what one lock can do per second (round trips while it is held), and every
transaction costs its round trips and client CPU even where nothing contends. So requests that
arrive while a transaction of this coalescer is running wait; when it commits, the next
transaction takes every waiting request at once, whatever events they are for, and serves them
as one group (services.booking_rules): one set of statements and one COMMIT for all. Nobody
waits on purpose: a lone request runs at once, and groups form only when requests pile up.

Every caller gets its own answer, only after the commit that made it durable, and an error
only for what failed for it: when a group is served again one request at a time (or a repeat
runs after it), a request that fails there is answered with its failure alone. A second
request for the same user and event in one group runs after the group, on its own, so it sees
what the first one did.

On a Galera cluster the other nodes' workers write the same event rows: a group that loses
certification to one of them is retried whole, so after a conflict the next groups are half as
large (down to one request), and double again with each group that commits at the first try.
Every transaction here is causal there: a cancel finds a booking made through another node.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.db import RETRIES_USED, run_transaction
from booking_service.errors import AppError
from booking_service.repositories.bookings import EventUser
from booking_service.services.booking_rules import (
    Answer,
    BookOrCancel,
    book_and_cancel,
    integrity_refusal,
    kept_form,
)
from booking_service.services.idempotency import HeldKey
from booking_service.services.waiting import GroupDrain, Waiting

log = logging.getLogger(__name__)


_Waiting = Waiting[BookOrCancel, Answer]


@dataclass(slots=True)
class CoalescerStats:
    transactions: int = 0  # transactions of this coalescer, committed or failed
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


class Coalescer:
    """One per worker. `group_max=1` turns grouping off: every request is its own transaction."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        group_max: int,
        lock_retries: int,
    ) -> None:
        self._session_factory = session_factory
        self._group_max = group_max
        self._retries = lock_retries
        self._group_limit = GroupLimit(group_max)
        self._waiting = GroupDrain(
            session_factory,
            self._answer_group,
            lambda: self._group_limit.current,
            name="booking coalescer",
        )
        self.stats = CoalescerStats()

    async def serve(self, request: BookOrCancel, key: HeldKey | None = None) -> Answer:
        """The request's answer, once committed. A request with an idempotency key runs in a
        transaction of its own, which also keeps its answer with the key: never grouped."""
        if key is not None or self._group_max <= 1:
            return await self._run_alone(self._session_factory(), request, key)
        return await self._waiting.answer(request)

    async def _answer_group(self, session: AsyncSession, group: list[_Waiting]) -> None:
        """Serve the group and give every caller its own answer."""
        self.stats.transactions += 1
        self.stats.requests += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        requests = [waiting.request for waiting in group]
        outcomes: Sequence[Answer | Exception]
        try:
            if len(requests) == 1:
                outcomes = [await self._run_alone_or_error(session, requests[0])]
            else:
                outcomes = await self._run_together(session, requests)
        except Exception as exc:  # the group's one transaction failed: nobody's claim committed
            outcomes = [exc] * len(group)
        for waiting, outcome in zip(group, outcomes, strict=True):
            waiting.resolve(outcome)
        self.stats.group_limit = self._group_limit.after(session.info.get(RETRIES_USED, 0))

    async def _run_alone(
        self, session: AsyncSession, request: BookOrCancel, key: HeldKey | None = None
    ) -> Answer:
        """One request in a transaction of its own: a group of one."""

        async def work() -> Answer:
            (outcome,) = await book_and_cancel(session, [request])
            if isinstance(outcome, AppError):
                raise outcome
            if key is not None:
                await key.keep_result(session, kept_form(outcome))
            return outcome

        try:
            return await run_transaction(session, work, retries=self._retries, causal=True)
        except IntegrityError as exc:
            # The whole transaction rolled back, the ticket count with it.
            raise integrity_refusal(exc) from exc

    async def _run_alone_or_error(
        self, session: AsyncSession, request: BookOrCancel
    ) -> Answer | Exception:
        """Whatever one request alone raises is its answer alone: beside it in the group, some
        requests may have committed already and others still wait their turn, and each of
        them gets the answer of what happened to it."""
        try:
            return await self._run_alone(session, request)
        except Exception as exc:
            return exc

    async def _run_together(
        self, session: AsyncSession, requests: list[BookOrCancel]
    ) -> Sequence[Answer | Exception]:
        """Serve a group in one transaction; a user's second request for the same event, and
        the whole group if the database refuses it for a reason nobody foresaw, one by one."""
        first: dict[EventUser, int] = {}
        repeats: list[int] = []  # the same user and event twice in one group: served after it
        for index, request in enumerate(requests):
            if request.key in first:
                repeats.append(index)
            else:
                first[request.key] = index
        distinct = [requests[index] for index in first.values()]
        results: Sequence[Answer | Exception]
        try:
            results = await run_transaction(
                session,
                lambda: book_and_cancel(session, distinct),
                retries=self._retries,
                causal=True,
            )
        except DBAPIError as exc:
            # Refused for a reason the group did not foresee (lock conflicts and an unreachable
            # database are ServiceBusy by now, and concern everyone), which may concern one
            # request alone; rare enough to redo everyone one by one, where each gets the
            # answer that fits them.
            log.info("grouped transaction refused (%s), serving its requests one by one", exc.orig)
            results = [await self._run_alone_or_error(session, r) for r in distinct]
        outcomes: dict[int, Answer | Exception] = dict(zip(first.values(), results, strict=True))
        for index in repeats:
            outcomes[index] = await self._run_alone_or_error(session, requests[index])
        return [outcomes[index] for index in range(len(requests))]
