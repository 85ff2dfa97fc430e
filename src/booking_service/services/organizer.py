"""What only an event's owner may do: change it, close or cancel it, read its bookings and
history. Each public method is one transaction; the changing ones lock the event row first and
decide everything (ownership included) from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import run_transaction
from booking_service.errors import (
    CapacityBelowHeld,
    CapacityBelowParty,
    EventCancelled,
    EventNotFound,
    MaxPerUserAboveLimit,
    NotEventOwner,
    SaleWindowEmpty,
    TooManyTickets,
)
from booking_service.models import BookingStatus, EventState, HistoryAction, WaitlistMode
from booking_service.models.event import Event
from booking_service.repositories import booking_lists, bookings, events, history
from booking_service.repositories.booking_lists import EventClaim
from booking_service.repositories.events import EventSnapshot, LockedEvent
from booking_service.repositories.history import HistoryItem
from booking_service.services.line import EventChanges, hand_on

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EventChange:
    """Fields to change; None leaves a field as it is."""

    tickets: int | None = None
    waitlist_mode: WaitlistMode | None = None
    offer_seconds: int | None = None
    sales_start: datetime | None = None
    sales_end: datetime | None = None
    transfers_allowed: bool | None = None
    max_per_user: int | None = None


@dataclass(frozen=True, slots=True)
class Released:
    """What cancelling an event gave back."""

    tickets: int
    offers: int
    places: int


class OrganizerService:
    def __init__(
        self, session: AsyncSession, *, max_tickets: int, max_per_user: int, lock_retries: int
    ) -> None:
        self._session = session
        self._max_tickets = max_tickets
        self._max_per_user = max_per_user
        self._retries = lock_retries

    async def _locked_change(
        self, user_id: int, event_id: int, change: Callable[[LockedEvent], Awaitable[T]]
    ) -> T:
        async def work() -> T:
            event = await events.get_event_for_update(self._session, event_id)
            if event is None:
                raise EventNotFound()
            if event.owner_id != user_id:
                raise NotEventOwner()
            return await change(event)

        # Causal: an event just created through another node can be changed.
        return await run_transaction(self._session, work, retries=self._retries, causal=True)

    async def _owned_read(self, user_id: int, event_id: int, read: Callable[[], Awaitable[T]]) -> T:
        async def work() -> T:
            owner_id = await events.get_owner_id(self._session, event_id)
            if owner_id is None:
                raise EventNotFound()
            if owner_id != user_id:
                raise NotEventOwner()
            return await read()

        return await run_transaction(
            self._session, work, retries=self._retries, read_only=True, causal=True
        )

    async def _snapshot(self, event_id: int) -> EventSnapshot:
        snapshot = await events.get_event(self._session, event_id)
        assert snapshot is not None  # the row is locked by this transaction
        return snapshot

    async def update(self, user_id: int, event_id: int, update: EventChange) -> EventSnapshot:
        """Change the waiting-list mode, the offer time, the sale window, whether transfers are
        allowed, max_per_user, and the number of tickets, in that order: an increase in the
        same request already follows the new mode."""
        if update.tickets is not None and update.tickets > self._max_tickets:
            raise TooManyTickets(self._max_tickets)
        if update.max_per_user is not None and update.max_per_user > self._max_per_user:
            raise MaxPerUserAboveLimit(self._max_per_user)

        async def change(event: LockedEvent) -> EventSnapshot:
            if event.state is EventState.CANCELLED:
                raise EventCancelled()
            event = dataclasses.replace(
                event,
                waitlist_mode=update.waitlist_mode or event.waitlist_mode,
                offer_seconds=update.offer_seconds or event.offer_seconds,
            )
            sales_start = update.sales_start or event.sales_start
            sales_end = update.sales_end or event.sales_end
            if sales_start is not None and sales_end is not None and sales_end <= sales_start:
                raise SaleWindowEmpty()
            changes = EventChanges(event)
            changes.fields[Event.waitlist_mode.key] = event.waitlist_mode
            changes.fields[Event.offer_seconds.key] = event.offer_seconds
            changes.fields[Event.sales_start.key] = sales_start
            changes.fields[Event.sales_end.key] = sales_end
            if update.transfers_allowed is not None:
                changes.fields[Event.transfers_allowed.key] = update.transfers_allowed
            if update.max_per_user is not None:  # bookings already made keep their size
                changes.fields[Event.max_per_user.key] = update.max_per_user
            if update.tickets is not None and update.tickets != event.capacity:
                await self._resize(changes, update.tickets)
            await changes.write(self._session)
            return await self._snapshot(event_id)

        return await self._locked_change(user_id, event_id, change)

    async def _resize(self, changes: EventChanges, tickets: int) -> None:
        """More tickets follow the line rule; fewer never go below those held (confirmed or
        offered), nor below the largest party in line, which could then never be served."""
        event = changes.event
        if tickets < event.held:
            raise CapacityBelowHeld(event.held)
        added = tickets - event.capacity
        if added < 0 and event.waiting_count:
            largest = await bookings.largest_party_in_line(self._session, event.id)
            if tickets < largest:
                raise CapacityBelowParty(largest)
        changes.fields[Event.capacity.key] = tickets
        if added > 0:
            await hand_on(self._session, changes, added)
        else:
            # Only free tickets go: none is confirmed or offered beyond the new size, and
            # fewer free tickets keep the first entry in line wanting more than are free.
            changes.available += added

    async def close(self, user_id: int, event_id: int) -> EventSnapshot:
        """No new bookings or places in line; the claims already made carry on. Closing a
        closed event changes nothing."""

        async def change(event: LockedEvent) -> EventSnapshot:
            if event.state is EventState.CANCELLED:
                raise EventCancelled()
            if event.state is EventState.OPEN:
                changes = EventChanges(event, fields={Event.state.key: EventState.CLOSED})
                await changes.write(self._session)
            return await self._snapshot(event_id)

        return await self._locked_change(user_id, event_id, change)

    async def cancel(self, user_id: int, event_id: int) -> Released:
        """Release every ticket, offer and place in line, each recorded in the history, and
        take no more bookings. Cancelling a cancelled event releases nothing more."""

        async def change(event: LockedEvent) -> Released:
            if event.state is EventState.CANCELLED:
                return Released(0, 0, 0)
            changes = EventChanges(
                event,
                # Every ticket is released, those checked in too.
                fields={Event.state.key: EventState.CANCELLED, Event.checked_in_count.key: 0},
                available=event.held,
                offered=-event.offered_count,
                waiting=-event.waiting_count,
                waiting_tickets=-event.waiting_tickets,
            )
            # Two statements whatever the number of claims: history first, while they are live.
            await history.add_for_live_claims(
                self._session,
                event_id=event_id,
                action=HistoryAction.EVENT_CANCELLED,
                at=changes.now,
            )
            await bookings.end_all_live(self._session, event_id, changes.now)
            await changes.write(self._session)
            confirmed = event.held - event.offered_count
            return Released(confirmed, event.offered_count, event.waiting_count)

        return await self._locked_change(user_id, event_id, change)

    async def list_bookings(
        self,
        user_id: int,
        event_id: int,
        *,
        status: BookingStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[list[EventClaim], int, int]:
        """A page of the event's live claims, how many there are, and how many tickets were
        checked in."""

        async def read() -> tuple[list[EventClaim], int, int]:
            claims, total = await booking_lists.list_live_for_event(
                self._session, event_id, status=status, limit=limit, offset=offset
            )
            return claims, total, (await self._snapshot(event_id)).checked_in_count

        return await self._owned_read(user_id, event_id, read)

    async def history(
        self, user_id: int, event_id: int, *, limit: int, offset: int
    ) -> tuple[list[HistoryItem], int]:
        return await self._owned_read(
            user_id,
            event_id,
            lambda: history.list_for_event(self._session, event_id, limit=limit, offset=offset),
        )
