"""The booking history: appended in the transaction of each change, read page by page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.models import (
    IS_LIVE,
    Booking,
    BookingHistory,
    Event,
    HistoryAction,
    User,
    table_of,
)

HISTORY_TABLE = table_of(BookingHistory)  # for the inserts of every booking group


@dataclass(frozen=True, slots=True)
class NewEntry:
    booking_id: int
    user_id: int
    action: HistoryAction
    quantity: int = 1  # tickets the entry concerns


async def add_entries(
    session: AsyncSession, *, event_id: int, entries: Sequence[NewEntry], at: datetime
) -> None:
    """Append entries of one event in one statement; their ids follow the order given."""
    await add_entries_of_events(session, [(event_id, entry) for entry in entries], at=at)


async def add_entries_of_events(
    session: AsyncSession, entries: Sequence[tuple[int, NewEntry]], *, at: datetime
) -> None:
    """Append (event id, entry) pairs, on any events, in one statement, in the order given."""
    await session.execute(
        insert(HISTORY_TABLE),
        [
            {
                "booking_id": entry.booking_id,
                "event_id": event_id,
                "user_id": entry.user_id,
                "action": entry.action,
                "quantity": entry.quantity,
                "created_at": at,
            }
            for event_id, entry in entries
        ],
    )


async def add_for_live_claims(
    session: AsyncSession, *, event_id: int, action: HistoryAction, at: datetime
) -> None:
    """One entry for every live claim of the event, however many, in one INSERT ... SELECT."""
    live = (
        select(
            Booking.id,
            Booking.event_id,
            Booking.user_id,
            literal(action.value),
            Booking.quantity,
            literal(at, BookingHistory.created_at.type),
        )
        .where(Booking.event_id == event_id, IS_LIVE)
        .order_by(Booking.id)
    )
    await session.execute(
        insert(BookingHistory).from_select(
            ["booking_id", "event_id", "user_id", "action", "quantity", "created_at"], live
        )
    )


@dataclass(frozen=True, slots=True)
class HistoryItem:
    id: int
    booking_id: int
    event_id: int
    event_name: str
    user_id: int
    username: str
    action: HistoryAction
    quantity: int
    created_at: datetime


async def _page(
    session: AsyncSession, where: Any, *, limit: int, offset: int
) -> tuple[list[HistoryItem], int]:
    rows = (
        await session.execute(
            select(
                BookingHistory.id,
                BookingHistory.booking_id,
                BookingHistory.event_id,
                Event.name.label("event_name"),
                BookingHistory.user_id,
                User.username,
                BookingHistory.action,
                BookingHistory.quantity,
                BookingHistory.created_at,
            )
            .join(Event, Event.id == BookingHistory.event_id)
            .join(User, User.id == BookingHistory.user_id)
            .where(where)
            .order_by(BookingHistory.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    total = await session.scalar(select(func.count()).select_from(BookingHistory).where(where))
    items = [HistoryItem(**{**row._mapping, "action": HistoryAction(row.action)}) for row in rows]
    return items, int(total or 0)


async def list_for_user(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> tuple[list[HistoryItem], int]:
    return await _page(session, BookingHistory.user_id == user_id, limit=limit, offset=offset)


async def list_for_event(
    session: AsyncSession, event_id: int, *, limit: int, offset: int
) -> tuple[list[HistoryItem], int]:
    return await _page(session, BookingHistory.event_id == event_id, limit=limit, offset=offset)
