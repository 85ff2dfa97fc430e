"""Queries on events. Lock points are named for what they lock.

Rows are read by column name into LockedEvent and EventSnapshot: a field of either is the
event column of the same name (a new column is a new field, nothing else here).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from booking_service.db import execute_write, insert_returning_id, note_event_changed
from booking_service.models import Booking, BookingStatus, Event, EventState, WaitlistMode, table_of
from booking_service.models.event import ShownState, shown_state
from booking_service.models.types import db_utcnow, db_utcnow_locked

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LockedEvent:
    """The event row as read under its lock: every decision of a transaction starts here."""

    id: int
    owner_id: int
    state: EventState
    waitlist_mode: WaitlistMode
    offer_seconds: int
    capacity: int
    available: int
    waiting_count: int  # entries in line
    waiting_tickets: int  # tickets the line wants
    offered_count: int
    next_line_seq: int
    sales_start: datetime | None
    sales_end: datetime | None
    transfers_allowed: bool
    checked_in_count: int
    max_per_user: int
    # The database's clock once the lock is held: the one reading of time the transaction
    # judges by (sale window, offer deadlines) and stamps its changes with.
    now: datetime

    @property
    def held(self) -> int:
        """Tickets confirmed or on offer."""
        return self.capacity - self.available


async def add_event(
    session: AsyncSession,
    *,
    owner_id: int,
    name: str,
    capacity: int,
    waitlist_mode: WaitlistMode,
    offer_seconds: int,
    sales_start: datetime | None,
    sales_end: datetime | None,
    transfers_allowed: bool,
    max_per_user: int = 1,
) -> int:
    return await insert_returning_id(
        session,
        insert(Event).values(
            owner_id=owner_id,
            name=name,
            capacity=capacity,
            available=capacity,
            waiting_count=0,
            waiting_tickets=0,
            max_per_user=max_per_user,
            next_line_seq=1,
            state=EventState.OPEN,
            waitlist_mode=waitlist_mode,
            offer_seconds=offer_seconds,
            offered_count=0,
            sales_start=sales_start,
            sales_end=sales_end,
            transfers_allowed=transfers_allowed,
            checked_in_count=0,
        ),
    )


EVENT_TABLE = table_of(Event)  # for the event lock every booking transaction starts with


def _columns(row_type: type[Any], **computed: ColumnElement[Any]) -> tuple[Any, ...]:
    """The SELECT list that fills `row_type`: each field is the event column of its name,
    except `computed` ones (the database's clock), labelled by name."""
    names = [field.name for field in dataclasses.fields(row_type)]
    return tuple(
        computed[name].label(name) if name in computed else EVENT_TABLE.c[name] for name in names
    )


# Columns stored as strings, read as their enums.
_ENUMS: dict[str, type[enum.StrEnum]] = {"state": EventState, "waitlist_mode": WaitlistMode}


def _from_row(row_type: type[T], row: Row[Any]) -> T:
    """Fill `row_type` from a row of `_columns(row_type, ...)`, by column name."""
    values = dict(row._mapping)
    for name, kind in _ENUMS.items():
        values[name] = kind(values[name])
    return row_type(**values)


LOCKED_COLUMNS = _columns(LockedEvent, now=db_utcnow_locked())


def _locked_event(row: Row[Any]) -> LockedEvent:
    return _from_row(LockedEvent, row)


async def get_event_for_update(session: AsyncSession, event_id: int) -> LockedEvent | None:
    """Lock the event row: the first lock of every change to the event, so lock order is fixed."""
    row = (
        await session.execute(
            select(*LOCKED_COLUMNS).where(EVENT_TABLE.c.id == event_id).with_for_update()
        )
    ).one_or_none()
    return None if row is None else _locked_event(row)


async def get_events_for_update(
    session: AsyncSession, event_ids: Collection[int]
) -> dict[int, LockedEvent]:
    """Lock several event rows in ascending id order, the order every multi-event lock takes,
    so two such transactions cannot wait on each other in a cycle. Unknown ids are absent."""
    rows = await session.execute(
        select(*LOCKED_COLUMNS)
        .where(EVENT_TABLE.c.id.in_(sorted(event_ids)))
        .order_by(EVENT_TABLE.c.id)
        .with_for_update()
    )
    return {row.id: _locked_event(row) for row in rows}


@dataclass(slots=True)
class CounterMoves:
    """What one transaction adds to an event's counters (possibly negative)."""

    available: int = 0  # tickets
    waiting: int = 0  # entries on the waiting list
    waiting_tickets: int = 0  # tickets they want
    offered: int = 0  # tickets on open offers
    line_seq: int = 0  # places on the waiting list handed out (next_line_seq)

    def __bool__(self) -> bool:
        return bool(
            self.available or self.waiting or self.waiting_tickets or self.offered or self.line_seq
        )


async def move_counters(
    session: AsyncSession, moves: Mapping[int, CounterMoves], **fields: Any
) -> None:
    """Add these amounts to each event's counters, however many events, in one statement, and
    set `fields` (state, capacity, ...; only when there is one event): the CHECKs that tie the
    columns hold after it. Every change to an event's counters goes through here."""
    assert not fields or len(moves) == 1, "columns are set on one event at a time"
    for event_id in moves:
        note_event_changed(session, event_id)

    def per_event(column: Any, amount: Callable[[CounterMoves], int]) -> Any:
        if len(moves) == 1:
            return column + amount(next(iter(moves.values())))
        return column + case({event_id: amount(m) for event_id, m in moves.items()}, value=Event.id)

    values = {
        Event.available.key: per_event(Event.available, lambda m: m.available),
        Event.waiting_count.key: per_event(Event.waiting_count, lambda m: m.waiting),
        Event.waiting_tickets.key: per_event(Event.waiting_tickets, lambda m: m.waiting_tickets),
        Event.offered_count.key: per_event(Event.offered_count, lambda m: m.offered),
        Event.next_line_seq.key: per_event(Event.next_line_seq, lambda m: m.line_seq),
    }
    await execute_write(
        session, update(Event).where(Event.id.in_(moves)).values(**values, **fields)
    )


@dataclass(frozen=True, slots=True)
class EventSnapshot:
    """An event's counters as of one single-row read, so they always add up."""

    id: int
    name: str
    capacity: int
    available: int
    waiting_count: int
    waiting_tickets: int
    offered_count: int
    max_per_user: int
    owner_id: int
    created_at: datetime
    state: EventState
    waitlist_mode: WaitlistMode
    offer_seconds: int
    sales_start: datetime | None
    sales_end: datetime | None
    transfers_allowed: bool
    checked_in_count: int
    # Tickets the first entry in line wants (None when nobody waits), read in the same SELECT.
    head_quantity: int | None
    # The database's clock as of the read: what the shown state is judged by.
    read_at: datetime

    @property
    def booked(self) -> int:
        """Confirmed tickets: neither free nor held by an open offer."""
        return self.capacity - self.available - self.offered_count

    @property
    def first_in_line_needs(self) -> int:
        """Tickets the first entry in line still lacks before it is served (0: nobody waits)."""
        if self.head_quantity is None:
            return 0
        return max(self.head_quantity - self.available, 0)

    @property
    def shown_state(self) -> ShownState:
        """The state as clients see it, as of the read."""
        return shown_state(self.state, self.sales_start, self.sales_end, self.read_at)


# The head of the line by the index (event_id, status, line_seq): one row looked up.
HEAD_QUANTITY = (
    select(Booking.quantity)
    .where(Booking.event_id == Event.id, Booking.status == BookingStatus.WAITLISTED)
    .order_by(Booking.line_seq)
    .limit(1)
    .correlate(Event)
    .scalar_subquery()
)
EVENT_COLUMNS = _columns(EventSnapshot, read_at=db_utcnow(), head_quantity=HEAD_QUANTITY)


def _snapshot(row: Row[Any]) -> EventSnapshot:
    return _from_row(EventSnapshot, row)


async def get_event(session: AsyncSession, event_id: int) -> EventSnapshot | None:
    row = (await session.execute(select(*EVENT_COLUMNS).where(Event.id == event_id))).one_or_none()
    return None if row is None else _snapshot(row)


async def get_owner_id(session: AsyncSession, event_id: int) -> int | None:
    owner_id: int | None = await session.scalar(select(Event.owner_id).where(Event.id == event_id))
    return owner_id


async def list_events(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[EventSnapshot], int]:
    rows = (
        await session.execute(
            select(*EVENT_COLUMNS).order_by(Event.id.desc()).limit(limit).offset(offset)
        )
    ).all()
    total = await session.scalar(select(func.count()).select_from(Event))
    return [_snapshot(row) for row in rows], int(total or 0)
