"""Queries on events. Lock points are named for what they lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import execute_write, insert_returning_id
from booking_service.models import Event


@dataclass(frozen=True, slots=True)
class LockedEvent:
    id: int
    available: int
    waiting_count: int
    next_line_seq: int


async def add_event(session: AsyncSession, *, owner_id: int, name: str, capacity: int) -> int:
    return await insert_returning_id(
        session,
        insert(Event).values(
            owner_id=owner_id,
            name=name,
            capacity=capacity,
            available=capacity,
            waiting_count=0,
            next_line_seq=1,
        ),
    )


async def get_event_for_update(session: AsyncSession, event_id: int) -> LockedEvent | None:
    """Lock the event row: the first lock of every book and cancel, so lock order is fixed."""
    row = (
        await session.execute(
            select(Event.id, Event.available, Event.waiting_count, Event.next_line_seq)
            .where(Event.id == event_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        return None
    return LockedEvent(row.id, row.available, row.waiting_count, row.next_line_seq)


async def take_ticket(session: AsyncSession, event_id: int) -> bool:
    """Take one free ticket if there is one. Locks the event row either way on MariaDB/MySQL."""
    result = await execute_write(
        session,
        update(Event)
        .where(Event.id == event_id, Event.available > 0)
        .values(available=Event.available - 1),
    )
    return result.rowcount == 1


async def release_ticket(session: AsyncSession, event_id: int) -> None:
    await session.execute(
        update(Event).where(Event.id == event_id).values(available=Event.available + 1)
    )


async def join_line(session: AsyncSession, event_id: int) -> None:
    await session.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(waiting_count=Event.waiting_count + 1, next_line_seq=Event.next_line_seq + 1)
    )


async def leave_line(session: AsyncSession, event_id: int) -> None:
    await session.execute(
        update(Event).where(Event.id == event_id).values(waiting_count=Event.waiting_count - 1)
    )


EVENT_COLUMNS = (
    Event.id,
    Event.name,
    Event.capacity,
    Event.available,
    Event.waiting_count,
    Event.owner_id,
    Event.created_at,
)


@dataclass(frozen=True, slots=True)
class EventSnapshot:
    """An event's counters as of one single-row read, so they always add up."""

    id: int
    name: str
    capacity: int
    available: int
    waiting_count: int
    owner_id: int
    created_at: datetime

    @property
    def booked(self) -> int:
        return self.capacity - self.available


def _snapshot(row: Any) -> EventSnapshot:
    return EventSnapshot(*row)


async def get_event(session: AsyncSession, event_id: int) -> EventSnapshot | None:
    row = (await session.execute(select(*EVENT_COLUMNS).where(Event.id == event_id))).one_or_none()
    return None if row is None else _snapshot(row)


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


async def apply_claims(session: AsyncSession, event_id: int, *, taken: int, joined: int) -> None:
    """Record `taken` tickets sold and `joined` people added to the line, in one statement."""
    await session.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(
            available=Event.available - taken,
            waiting_count=Event.waiting_count + joined,
            next_line_seq=Event.next_line_seq + joined,
        )
    )
