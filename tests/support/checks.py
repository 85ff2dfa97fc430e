"""Looking behind the API: a refused request changed nothing, the booking rows as stored, and
every answer to an offer is what the history says became of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import select

from booking_service.bench.invariants import check_invariants
from booking_service.db import connect
from booking_service.models import Booking, BookingHistory, BookingStatus, HistoryAction
from booking_service.models.base import Base

Snapshot = dict[str, list[tuple[Any, ...]]]


async def db_snapshot(url: str) -> Snapshot:
    """Every row of every table in primary-key order: equal snapshots mean nothing changed."""
    snapshot: Snapshot = {}
    async with connect(url) as engine, engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


@asynccontextmanager
async def assert_unchanged(url: str, event_ids: Sequence[int] = ()) -> AsyncIterator[None]:
    """Assert that the block leaves every table exactly as it found it, invariants intact."""
    before = await db_snapshot(url)
    yield
    after = await db_snapshot(url)
    assert after == before, "the database changed"
    await check_invariants(url, event_ids)


@dataclass(frozen=True)
class BookingRecord:
    """One `booking` row as stored, for tests that look behind the API."""

    id: int
    event_id: int
    user_id: int
    status: BookingStatus
    active: int | None
    line_seq: int | None
    created_at: datetime
    confirmed_at: datetime | None
    promoted_at: datetime | None
    ended_at: datetime | None


async def booking_records(url: str, event_id: int | None = None) -> list[BookingRecord]:
    """The booking rows (of one event, or all), in id order."""
    # The record's fields name the columns read.
    query = select(*(getattr(Booking, f.name) for f in fields(BookingRecord))).order_by(Booking.id)
    if event_id is not None:
        query = query.where(Booking.event_id == event_id)
    async with connect(url) as engine, engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [BookingRecord(**{**row._asdict(), "status": BookingStatus(row.status)}) for row in rows]


@dataclass(frozen=True)
class OfferAnswer:
    """What a client was told when it answered an offer."""

    user_id: int
    event_id: int
    path: str  # /offers/accept or /offers/decline
    status: int


# How the offer must have ended, by the answer its holder got.
OFFER_ENDINGS = {
    ("/offers/accept", 200): HistoryAction.ACCEPTED,
    ("/offers/decline", 200): HistoryAction.DECLINED,
    ("/offers/accept", 410): HistoryAction.EXPIRED,
    ("/offers/decline", 410): HistoryAction.EXPIRED,
}


async def check_offer_answers(url: str, answers: Sequence[OfferAnswer]) -> Counter[str]:
    """Assert that every answer to an offer is what the history says became of it (each user
    holds at most one offer per event in these tests); returns how the offers ended."""
    async with connect(url) as engine, engine.connect() as conn:
        rows = await conn.execute(
            select(BookingHistory.user_id, BookingHistory.event_id, BookingHistory.action).where(
                BookingHistory.action.in_(set(OFFER_ENDINGS.values()))
            )
        )
        endings = {(user, event): action for user, event, action in rows}
    for answer in answers:
        expected = OFFER_ENDINGS.get((answer.path, answer.status))
        assert expected is not None, answer
        assert endings.get((answer.user_id, answer.event_id)) == expected, answer
    return Counter(endings.values())
