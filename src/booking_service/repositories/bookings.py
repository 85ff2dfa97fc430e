"""Queries on bookings (tickets and places in line)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from booking_service.db import insert_returning_id
from booking_service.models import Booking, BookingStatus, Event
from booking_service.models.types import utcnow


@dataclass(frozen=True, slots=True)
class LockedBooking:
    id: int
    user_id: int
    status: BookingStatus
    line_seq: int | None


async def add_confirmed(session: AsyncSession, *, event_id: int, user_id: int) -> int:
    now = utcnow()
    return await insert_returning_id(
        session,
        insert(Booking).values(
            event_id=event_id,
            user_id=user_id,
            status=BookingStatus.CONFIRMED,
            active=1,
            created_at=now,
            confirmed_at=now,
        ),
    )


async def add_waitlisted(
    session: AsyncSession, *, event_id: int, user_id: int, line_seq: int
) -> int:
    return await insert_returning_id(
        session,
        insert(Booking).values(
            event_id=event_id,
            user_id=user_id,
            status=BookingStatus.WAITLISTED,
            active=1,
            line_seq=line_seq,
            created_at=utcnow(),
        ),
    )


def _locked(row: tuple[int, int, str, int | None] | None) -> LockedBooking | None:
    if row is None:
        return None
    return LockedBooking(row[0], row[1], BookingStatus(row[2]), row[3])


async def get_active_for_update(
    session: AsyncSession, *, event_id: int, user_id: int
) -> LockedBooking | None:
    """Lock this user's live claim on the event. Call with the event row already locked."""
    row = (
        await session.execute(
            select(Booking.id, Booking.user_id, Booking.status, Booking.line_seq)
            .where(Booking.event_id == event_id, Booking.user_id == user_id, Booking.active == 1)
            .with_for_update()
        )
    ).one_or_none()
    return _locked(None if row is None else tuple(row))  # type: ignore[arg-type]


async def get_first_in_line_for_update(
    session: AsyncSession, event_id: int
) -> LockedBooking | None:
    """Lock the head of the event's line. Call with the event row already locked."""
    row = (
        await session.execute(
            select(Booking.id, Booking.user_id, Booking.status, Booking.line_seq)
            .where(Booking.event_id == event_id, Booking.status == BookingStatus.WAITLISTED)
            .order_by(Booking.line_seq)
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()
    return _locked(None if row is None else tuple(row))  # type: ignore[arg-type]


async def promote(session: AsyncSession, booking_id: int) -> datetime:
    """Give the waiting booking its ticket; returns the time of the promotion."""
    now = utcnow()
    await session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.status == BookingStatus.WAITLISTED)
        .values(status=BookingStatus.CONFIRMED, confirmed_at=now, promoted_at=now)
    )
    return now


async def end(session: AsyncSession, booking_id: int, status: BookingStatus) -> None:
    """Close a live claim (cancelled or left); the row stays as the record of it."""
    await session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.active == 1)
        .values(status=status, active=None, ended_at=utcnow())
    )


@dataclass(frozen=True, slots=True)
class UserBooking:
    id: int
    event_id: int
    event_name: str
    status: BookingStatus
    position: int | None
    created_at: datetime
    confirmed_at: datetime | None
    promoted_at: datetime | None


async def list_active_for_user(session: AsyncSession, user_id: int) -> Sequence[UserBooking]:
    ahead = aliased(Booking)
    # Place in line: people of the same event still waiting with a number not after mine.
    position = (
        select(func.count())
        .where(
            ahead.event_id == Booking.event_id,
            ahead.status == BookingStatus.WAITLISTED,
            ahead.line_seq <= Booking.line_seq,
        )
        .correlate(Booking)
        .scalar_subquery()
    )
    rows = (
        await session.execute(
            select(
                Booking.id,
                Booking.event_id,
                Event.name,
                Booking.status,
                position,
                Booking.created_at,
                Booking.confirmed_at,
                Booking.promoted_at,
            )
            .join(Event, Event.id == Booking.event_id)
            .where(Booking.user_id == user_id, Booking.active == 1)
            .order_by(Booking.id.desc())
        )
    ).all()
    return [
        UserBooking(
            id=row[0],
            event_id=row[1],
            event_name=row[2],
            status=BookingStatus(row[3]),
            position=row[4] if row[3] == BookingStatus.WAITLISTED else None,
            created_at=row[5],
            confirmed_at=row[6],
            promoted_at=row[7],
        )
        for row in rows
    ]


async def live_claimants(
    session: AsyncSession, *, event_id: int, user_ids: Sequence[int]
) -> set[int]:
    """Which of these users already hold a ticket or a place in line for the event."""
    rows = await session.execute(
        select(Booking.user_id).where(
            Booking.event_id == event_id, Booking.active == 1, Booking.user_id.in_(user_ids)
        )
    )
    return set(rows.scalars())


@dataclass(frozen=True, slots=True)
class NewClaim:
    user_id: int
    status: BookingStatus
    line_seq: int | None = None


async def add_claims(
    session: AsyncSession, *, event_id: int, claims: Sequence[NewClaim]
) -> dict[int, int]:
    """Insert many new claims on one event in one statement; returns user id -> booking id."""
    now = utcnow()
    await session.execute(
        insert(Booking),
        [
            {
                "event_id": event_id,
                "user_id": claim.user_id,
                "status": claim.status,
                "active": 1,
                "line_seq": claim.line_seq,
                "created_at": now,
                "confirmed_at": now if claim.status is BookingStatus.CONFIRMED else None,
            }
            for claim in claims
        ],
    )
    rows = await session.execute(
        select(Booking.user_id, Booking.id).where(
            Booking.event_id == event_id,
            Booking.active == 1,
            Booking.user_id.in_([claim.user_id for claim in claims]),
        )
    )
    return {row.user_id: row.id for row in rows}
