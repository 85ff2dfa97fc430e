"""Creating events and reading their state."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import run_transaction
from booking_service.errors import EventNotFound, TooManyTickets
from booking_service.models import WaitlistMode
from booking_service.repositories import events
from booking_service.repositories.events import EventSnapshot
from booking_service.services.idempotency import ResultHook


class EventService:
    def __init__(self, session: AsyncSession, *, max_tickets: int, lock_retries: int) -> None:
        self._session = session
        self._max_tickets = max_tickets
        self._retries = lock_retries

    async def create(
        self,
        *,
        owner_id: int,
        name: str,
        tickets: int,
        waitlist_mode: WaitlistMode,
        offer_seconds: int,
        then: ResultHook[int] | None = None,
    ) -> int:
        """The new event's id. `then(session, event_id)`, if given, runs in the transaction."""
        if tickets > self._max_tickets:
            raise TooManyTickets(self._max_tickets)

        async def work() -> int:
            session = self._session
            event_id = await events.add_event(
                session,
                owner_id=owner_id,
                name=name,
                capacity=tickets,
                waitlist_mode=waitlist_mode,
                offer_seconds=offer_seconds,
            )
            if then is not None:
                await then(session, event_id)
            return event_id

        return await run_transaction(self._session, work, retries=self._retries)

    async def get(self, event_id: int) -> EventSnapshot:
        snapshot = await run_transaction(
            self._session,
            lambda: events.get_event(self._session, event_id),
            retries=self._retries,
            read_only=True,
        )
        if snapshot is None:
            raise EventNotFound()
        return snapshot

    async def list(self, *, limit: int, offset: int) -> tuple[Sequence[EventSnapshot], int]:
        return await run_transaction(
            self._session,
            lambda: events.list_events(self._session, limit=limit, offset=offset),
            retries=self._retries,
            read_only=True,
        )
