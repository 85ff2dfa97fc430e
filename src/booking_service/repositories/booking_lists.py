"""Listings of claims: a user's own across events, and an event's for its organizer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from booking_service.models import IS_LIVE, Booking, BookingStatus, Event, User


class _ClaimState(TypedDict):
    status: BookingStatus
    quantity: int
    position: int | None
    created_at: datetime
    confirmed_at: datetime | None
    promoted_at: datetime | None
    offer_expires_at: datetime | None
    checked_in_at: datetime | None


def _claim_state_columns(position: ColumnElement[int]) -> tuple[Any, ...]:
    """What a listed claim is and when it changed: the columns both listings read after their
    own three (booking id, then the other party's id and name)."""
    return (
        Booking.status,
        Booking.quantity,
        position.label("position"),
        Booking.created_at,
        Booking.confirmed_at,
        Booking.promoted_at,
        Booking.offer_expires_at,
        Booking.checked_in_at,
    )


def _claim_state(row: Any) -> _ClaimState:
    """The claim's state from a listing row; a place in line only while waiting, a deadline
    only while offered."""
    status = BookingStatus(row.status)
    return _ClaimState(
        status=status,
        quantity=row.quantity,
        position=row.position if status is BookingStatus.WAITLISTED else None,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        promoted_at=row.promoted_at,
        offer_expires_at=row.offer_expires_at if status is BookingStatus.OFFERED else None,
        checked_in_at=row.checked_in_at,
    )


@dataclass(frozen=True, slots=True)
class UserBooking:
    id: int
    event_id: int
    event_name: str
    status: BookingStatus
    quantity: int
    position: int | None
    created_at: datetime
    confirmed_at: datetime | None
    promoted_at: datetime | None
    offer_expires_at: datetime | None
    checked_in_at: datetime | None
    ticket_seed: str | None


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
                *_claim_state_columns(position),
                Booking.ticket_seed,
            )
            .join(Event, Event.id == Booking.event_id)
            .where(Booking.user_id == user_id, IS_LIVE)
            .order_by(Booking.id.desc())
        )
    ).all()
    return [
        UserBooking(
            id=row.id,
            event_id=row.event_id,
            event_name=row.name,
            ticket_seed=row.ticket_seed,
            **_claim_state(row),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class EventClaim:
    id: int
    user_id: int
    username: str
    status: BookingStatus
    quantity: int
    position: int | None
    created_at: datetime
    confirmed_at: datetime | None
    promoted_at: datetime | None
    offer_expires_at: datetime | None
    checked_in_at: datetime | None


# An event's claims as an organizer reads them: tickets, then offers, then the waiting list.
STATUS_RANK = case(
    (Booking.status == BookingStatus.CONFIRMED, 0),
    (Booking.status == BookingStatus.OFFERED, 1),
    else_=2,
)


async def list_live_for_event(
    session: AsyncSession,
    event_id: int,
    *,
    status: BookingStatus | None,
    limit: int,
    offset: int,
) -> tuple[list[EventClaim], int]:
    """One page of the event's live claims and how many there are, from one statement: the
    places in line and the total are window functions over the same rows as the page."""
    conditions = [Booking.event_id == event_id, IS_LIVE]
    if status is not None:
        conditions.append(Booking.status == status)
    position = func.row_number().over(partition_by=Booking.status, order_by=Booking.line_seq)
    rows = (
        await session.execute(
            select(
                Booking.id,
                Booking.user_id,
                User.username,
                *_claim_state_columns(position),
                func.count().over().label("total"),
            )
            .join(User, User.id == Booking.user_id)
            .where(and_(*conditions))
            .order_by(STATUS_RANK, Booking.line_seq, Booking.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    if rows:
        total = int(rows[0].total)
    else:  # past the last page: the window had no rows to count
        total = int(
            await session.scalar(select(func.count()).select_from(Booking).where(*conditions)) or 0
        )
    claims = [
        EventClaim(id=row.id, user_id=row.user_id, username=row.username, **_claim_state(row))
        for row in rows
    ]
    return claims, total
