"""Queries on bookings (tickets, offers and places in line)."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from booking_service.db import execute_write, insert_returning_id
from booking_service.models import IS_LIVE, LIVE, Booking, BookingStatus, table_of
from booking_service.models.types import db_utcnow

BOOKING_TABLE = table_of(Booking)  # for the claims statements of every booking group


@dataclass(frozen=True, slots=True)
class LockedBooking:
    id: int
    user_id: int
    status: BookingStatus
    line_seq: int | None
    offer_expires_at: datetime | None = None
    checked_in_at: datetime | None = None
    quantity: int = 1  # tickets of the claim


LOCKED_COLUMNS = (
    Booking.id,
    Booking.user_id,
    Booking.status,
    Booking.line_seq,
    Booking.offer_expires_at,
    Booking.checked_in_at,
    Booking.quantity,
)


def _locked(row: Any) -> LockedBooking:
    return LockedBooking(
        id=row.id,
        user_id=row.user_id,
        status=BookingStatus(row.status),
        line_seq=row.line_seq,
        offer_expires_at=row.offer_expires_at,
        checked_in_at=row.checked_in_at,
        quantity=row.quantity,
    )


def new_ticket_seed() -> str:
    """The random half of a claim's ticket code: 128 bits from `secrets`, as hex. Every claim
    gets one when it is made, so a place in line promoted later already has its code."""
    return secrets.token_hex(16)


async def get_active_for_update(
    session: AsyncSession, *, event_id: int, user_id: int
) -> LockedBooking | None:
    """Lock this user's live claim on the event. Call with the event row already locked."""
    row = (
        await session.execute(
            select(*LOCKED_COLUMNS)
            .where(Booking.event_id == event_id, Booking.user_id == user_id, IS_LIVE)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else _locked(row)


async def live_claims_for_update(
    session: AsyncSession, event_id: int, user_ids: Collection[int]
) -> dict[int, LockedBooking]:
    """Lock these users' live claims on the event, in one statement; keyed by user id. Call
    with the event row already locked."""
    rows = await session.execute(
        select(*LOCKED_COLUMNS)
        .where(
            Booking.event_id == event_id,
            Booking.user_id.in_(user_ids),
            IS_LIVE,
        )
        .with_for_update()
    )
    return {claim.user_id: claim for claim in map(_locked, rows)}


async def last_ended_status(
    session: AsyncSession, *, event_id: int, user_id: int
) -> BookingStatus | None:
    """How this user's most recent ended claim on the event ended, if they had one."""
    status = await session.scalar(
        select(Booking.status)
        .where(Booking.event_id == event_id, Booking.user_id == user_id, Booking.active.is_(None))
        .order_by(Booking.id.desc())
        .limit(1)
    )
    return None if status is None else BookingStatus(status)


async def first_in_line_for_update(
    session: AsyncSession, event_id: int, count: int
) -> list[LockedBooking]:
    """Lock the first `count` entries of the event's waiting list, in line order, with the
    tickets each wants. Call with the event row already locked."""
    rows = await session.execute(
        select(*LOCKED_COLUMNS)
        .where(Booking.event_id == event_id, Booking.status == BookingStatus.WAITLISTED)
        .order_by(Booking.line_seq)
        .limit(count)
        .with_for_update()
    )
    return [_locked(row) for row in rows]


def _in_line_through(event_id: int, last_line_seq: int) -> ColumnElement[bool]:
    return and_(
        Booking.event_id == event_id,
        Booking.status == BookingStatus.WAITLISTED,
        Booking.line_seq <= last_line_seq,
    )


async def promote_through(
    session: AsyncSession, *, event_id: int, last_line_seq: int, at: datetime
) -> None:
    """Book a ticket for everyone in line up to `last_line_seq` (rows locked just before)."""
    await execute_write(
        session,
        update(Booking)
        .where(_in_line_through(event_id, last_line_seq))
        .values(status=BookingStatus.CONFIRMED, confirmed_at=at, promoted_at=at),
    )


async def offer_through(
    session: AsyncSession, *, event_id: int, last_line_seq: int, expires_at: datetime
) -> None:
    """Offer a ticket to everyone in line up to `last_line_seq` (rows locked just before)."""
    await execute_write(
        session,
        update(Booking)
        .where(_in_line_through(event_id, last_line_seq))
        .values(status=BookingStatus.OFFERED, offer_expires_at=expires_at),
    )


async def lower_quantities(session: AsyncSession, given_up: Mapping[int, int]) -> None:
    """Take these many tickets off each of these live claims (booking id -> tickets; each
    locked just before, each keeping at least one), in one statement."""
    await execute_write(
        session,
        update(Booking)
        .where(Booking.id.in_(given_up), IS_LIVE)
        .values(quantity=Booking.quantity - case(dict(given_up), value=Booking.id)),
    )


async def largest_party_in_line(session: AsyncSession, event_id: int) -> int:
    """Tickets wanted by the largest entry in the event's line (0: nobody waits). Call with the
    event row locked: every claim changes under it, so this read is current."""
    largest = await session.scalar(
        select(func.max(Booking.quantity)).where(
            Booking.event_id == event_id, Booking.status == BookingStatus.WAITLISTED
        )
    )
    return int(largest or 0)


async def accept_offer(session: AsyncSession, booking_id: int, at: datetime) -> None:
    await execute_write(
        session,
        update(Booking)
        .where(Booking.id == booking_id, Booking.status == BookingStatus.OFFERED)
        .values(status=BookingStatus.CONFIRMED, confirmed_at=at, promoted_at=at),
    )


async def end(
    session: AsyncSession, booking_ids: Sequence[int], status: BookingStatus, at: datetime
) -> None:
    """Close live claims (cancelled, left, declined, expired); the rows stay as the record."""
    await execute_write(
        session,
        update(Booking)
        .where(Booking.id.in_(booking_ids), IS_LIVE)
        .values(status=status, active=None, ended_at=at),
    )


async def ticket_for_update(
    session: AsyncSession, *, event_id: int, ticket_seed: str
) -> LockedBooking | None:
    """Lock the event's booking whose ticket code carries this seed, whatever its status.
    Call with the event row already locked."""
    row = (
        await session.execute(
            select(*LOCKED_COLUMNS)
            .where(Booking.event_id == event_id, Booking.ticket_seed == ticket_seed)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else _locked(row)


async def check_in(session: AsyncSession, booking_id: int, at: datetime) -> None:
    """Mark a confirmed ticket (locked just before) as used at the door."""
    await execute_write(
        session,
        update(Booking)
        .where(Booking.id == booking_id, Booking.checked_in_at.is_(None))
        .values(checked_in_at=at),
    )


async def end_all_live(session: AsyncSession, event_id: int, at: datetime) -> None:
    """Release every live claim of the event: the organizer cancelled it."""
    await execute_write(
        session,
        update(Booking)
        .where(Booking.event_id == event_id, IS_LIVE)
        .values(status=BookingStatus.EVENT_CANCELLED, active=None, ended_at=at),
    )


async def lapsed_offers_for_update(
    session: AsyncSession, event_id: int, now: datetime
) -> list[LockedBooking]:
    """Lock the event's open offers whose deadline has passed, oldest place in line first.
    Call with the event row already locked: the deadline is judged from these locked rows."""
    rows = await session.execute(
        select(*LOCKED_COLUMNS)
        .where(
            Booking.event_id == event_id,
            Booking.status == BookingStatus.OFFERED,
            Booking.offer_expires_at <= now,
        )
        .order_by(Booking.line_seq)
        .with_for_update()
    )
    return [_locked(row) for row in rows]


async def events_with_lapsed_offers(session: AsyncSession, *, limit: int) -> list[int]:
    """Events that have an open offer past its deadline by the database's clock (a hint:
    re-checked under the lock)."""
    rows = await session.execute(
        select(Booking.event_id)
        .where(Booking.status == BookingStatus.OFFERED, Booking.offer_expires_at <= db_utcnow())
        .distinct()
        .limit(limit)
    )
    return list(rows.scalars())


EventUser = tuple[int, int]  # (event id, user id)


async def _live_claims(session: AsyncSession, pairs: Collection[EventUser]) -> dict[EventUser, int]:
    """Booking ids of the live claims among these (event, user) pairs, in one statement."""
    table = BOOKING_TABLE.c
    rows = await session.execute(
        select(table.event_id, table.user_id, table.id).where(
            IS_LIVE,
            table.event_id.in_({event_id for event_id, _ in pairs}),
            table.user_id.in_({user_id for _, user_id in pairs}),
        )
    )
    wanted = set(pairs)
    return {
        (row.event_id, row.user_id): row.id for row in rows if (row.event_id, row.user_id) in wanted
    }


async def live_claimants(session: AsyncSession, pairs: Collection[EventUser]) -> set[EventUser]:
    """Which of these users already hold a ticket, an offer or a place in line for the event
    paired with them."""
    return set(await _live_claims(session, pairs))


@dataclass(frozen=True, slots=True)
class NewClaim:
    event_id: int
    user_id: int
    status: BookingStatus
    line_seq: int | None = None
    quantity: int = 1


async def add_claims(
    session: AsyncSession, claims: Sequence[NewClaim], *, at: datetime
) -> dict[EventUser, int]:
    """Insert new claims, on any events, in one statement; returns their booking ids. Every
    booking row is made here (bookings, a group's bookings, a transfer's new holder)."""
    rows = [
        {
            "event_id": claim.event_id,
            "user_id": claim.user_id,
            "status": claim.status,
            "active": LIVE,
            "line_seq": claim.line_seq,
            "quantity": claim.quantity,
            "created_at": at,
            "confirmed_at": at if claim.status is BookingStatus.CONFIRMED else None,
            "ticket_seed": new_ticket_seed(),
        }
        for claim in claims
    ]
    if len(rows) == 1:  # the driver reports a lone row's id: no statement to look it up
        claim = claims[0]
        return {
            (claim.event_id, claim.user_id): await insert_returning_id(
                session, insert(BOOKING_TABLE).values(rows[0])
            )
        }
    await session.execute(insert(BOOKING_TABLE), rows)
    return await _live_claims(session, [(claim.event_id, claim.user_id) for claim in claims])
