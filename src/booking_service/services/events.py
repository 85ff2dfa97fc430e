"""Creating events and reading their state."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.db import run_transaction
from booking_service.errors import EventNotFound, MaxPerUserAboveLimit, TooManyTickets
from booking_service.models import WaitlistMode
from booking_service.repositories import events
from booking_service.repositories.events import EventSnapshot
from booking_service.services.idempotency import HeldKey


class ReadAbandoned(Exception):
    """The shared read's own caller was cancelled before it finished."""


class StatusCache:
    """Recent event snapshots for GET /status, per worker: the flash-sale poll.

    During a sale thousands of clients poll the same few events. Each poll would be a
    transaction of its own; instead a worker answers from a snapshot at most `ttl_seconds` old,
    and concurrent polls that miss share one read. A snapshot is one single-row read, so its
    counts always add up. It may lag other workers' changes by up to `ttl_seconds`, never this
    worker's: each of its committed changes to an event drops that event's snapshot (`forget`,
    wired to the session factory). 0: every poll reads.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._snapshots: dict[int, tuple[float, EventSnapshot]] = {}
        self._loading: dict[int, asyncio.Future[EventSnapshot]] = {}
        # A stamp per event while a read of it is in flight, renewed by every forget: a read
        # started before a change must not be kept after it. Stamps are never reused, and an
        # event's entry goes once no read of it is in flight, so the map holds only events
        # being read (it had an entry for every event ever changed).
        self._generations: dict[int, int] = {}
        self._stamps = itertools.count(1)

    def forget(self, event_ids: Iterable[int]) -> None:
        for event_id in event_ids:
            self._snapshots.pop(event_id, None)
            self._loading.pop(event_id, None)  # later polls start a read of their own
            if event_id in self._generations:  # a read in flight: it must not be kept
                self._generations[event_id] = next(self._stamps)

    async def get(
        self, event_id: int, load: Callable[[], Awaitable[EventSnapshot]]
    ) -> EventSnapshot:
        if self._ttl <= 0:
            return await load()
        started = time.monotonic()
        cached = self._snapshots.get(event_id)
        if cached is not None and started - cached[0] < self._ttl:
            return cached[1]
        while (pending := self._loading.get(event_id)) is not None:
            try:
                return await asyncio.shield(pending)
            except ReadAbandoned:
                continue  # join the read that replaced it, or start one
        future: asyncio.Future[EventSnapshot] = asyncio.get_running_loop().create_future()
        self._loading[event_id] = future
        generation = self._generations.get(event_id)
        if generation is None:
            generation = self._generations[event_id] = next(self._stamps)
        try:
            snapshot = await load()
            unchanged = self._generations.get(event_id) == generation
        except BaseException as exc:
            # The read runs in this caller's request: if that request is cancelled, the polls
            # that joined it are not, and read again rather than inherit the cancellation.
            cancelled = isinstance(exc, asyncio.CancelledError)
            future.set_exception(ReadAbandoned() if cancelled else exc)
            future.exception()  # retrieved: nobody else may be waiting for it
            raise
        finally:
            if self._loading.get(event_id) is future:
                del self._loading[event_id]
            if event_id not in self._loading:
                # No read of it in flight that forget could reach; one it already reached
                # finds no stamp, so is not kept either.
                self._generations.pop(event_id, None)
        future.set_result(snapshot)
        if unchanged:
            if len(self._snapshots) >= self._max_entries:
                self._snapshots.clear()
            # Dated from before the read, so a snapshot is never trusted past its age.
            self._snapshots[event_id] = (started, snapshot)
        return snapshot


async def read_event(session: AsyncSession, event_id: int, *, retries: int) -> EventSnapshot:
    snapshot = await run_transaction(
        session,
        lambda: events.get_event(session, event_id),
        retries=retries,
        read_only=True,
    )
    if snapshot is None:
        raise EventNotFound()
    return snapshot


class StatusReads:
    """GET /status, one per worker: the event's counts from this worker's recent snapshot
    (StatusCache), or else one read. Apart from EventService so that a poll answered from the
    snapshot, nearly every poll during a sale, makes no session at all."""

    def __init__(
        self,
        cache: StatusCache,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        lock_retries: int,
    ) -> None:
        self._cache = cache
        self._session_factory = session_factory
        self._retries = lock_retries

    async def status(self, event_id: int) -> EventSnapshot:
        return await self._cache.get(event_id, lambda: self._read(event_id))

    async def _read(self, event_id: int) -> EventSnapshot:
        return await read_event(self._session_factory(), event_id, retries=self._retries)


class EventService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        max_tickets: int,
        max_per_user: int,
        lock_retries: int,
    ) -> None:
        self._session = session
        self._max_tickets = max_tickets
        self._max_per_user = max_per_user
        self._retries = lock_retries

    async def create(
        self,
        *,
        owner_id: int,
        name: str,
        tickets: int,
        waitlist_mode: WaitlistMode,
        offer_seconds: int,
        sales_start: datetime | None = None,
        sales_end: datetime | None = None,
        transfers_allowed: bool = True,
        max_per_user: int = 1,
        key: HeldKey | None = None,
    ) -> int:
        """The new event's id. With an idempotency `key`, it is kept with the key in the same
        transaction; a retry of a finished request gets the first id again."""
        if key is not None and key.kept is not None:
            return int(key.kept.result)
        if tickets > self._max_tickets:
            raise TooManyTickets(self._max_tickets)
        if max_per_user > self._max_per_user:
            raise MaxPerUserAboveLimit(self._max_per_user)

        async def work() -> int:
            session = self._session
            event_id = await events.add_event(
                session,
                owner_id=owner_id,
                name=name,
                capacity=tickets,
                waitlist_mode=waitlist_mode,
                offer_seconds=offer_seconds,
                sales_start=sales_start,
                sales_end=sales_end,
                transfers_allowed=transfers_allowed,
                max_per_user=max_per_user,
            )
            if key is not None:
                await key.keep_result(session, event_id)
            return event_id

        return await run_transaction(self._session, work, retries=self._retries)

    async def get(self, event_id: int) -> EventSnapshot:
        return await read_event(self._session, event_id, retries=self._retries)

    async def list(self, *, limit: int, offset: int) -> tuple[Sequence[EventSnapshot], int]:
        return await run_transaction(
            self._session,
            lambda: events.list_events(self._session, limit=limit, offset=offset),
            retries=self._retries,
            read_only=True,
        )
