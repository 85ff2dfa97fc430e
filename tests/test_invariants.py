"""The invariant check itself can fail: rows written straight into the database, right and wrong."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update

from booking_service.bench.invariants import InvariantBroken, find_invariant_breaks
from booking_service.models import Booking, BookingStatus, Event
from tests.support import Database, check_invariants, connect, create_users, wipe_tables

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    yield database
    await wipe_tables(database.url)


async def make_event(db: Database, *, capacity: int, available: int, waiting: int) -> int:
    [owner] = await create_users(db.url, 1, prefix=f"owner{secrets.token_hex(4)}-")
    async with connect(db.url) as engine, engine.begin() as conn:
        result = await conn.execute(
            insert(Event).values(
                owner_id=owner,
                name="Concert",
                capacity=capacity,
                available=available,
                waiting_count=waiting,
                next_line_seq=10,
                created_at=T0,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])


async def add_bookings(db: Database, event_id: int, rows: list[dict[str, Any]]) -> None:
    users = await create_users(db.url, len(rows), prefix=f"e{event_id}-")
    async with connect(db.url) as engine, engine.begin() as conn:
        for user_id, row in zip(users, rows, strict=True):
            active = 1 if row["status"] in ("confirmed", "waitlisted") else None
            await conn.execute(
                insert(Booking).values(
                    event_id=event_id, user_id=user_id, active=active, created_at=T0, **row
                )
            )


def confirmed(**extra: Any) -> dict[str, Any]:
    return {"status": BookingStatus.CONFIRMED, "confirmed_at": T0, **extra}


def waiting(seq: int) -> dict[str, Any]:
    return {"status": BookingStatus.WAITLISTED, "line_seq": seq}


def promoted(seq: int, when: int) -> dict[str, Any]:
    return confirmed(line_seq=seq, promoted_at=at(when), confirmed_at=at(when))


def left(seq: int, when: int) -> dict[str, Any]:
    return {"status": BookingStatus.LEFT, "line_seq": seq, "ended_at": at(when)}


async def test_promotions_in_line_order_pass(db: Database) -> None:
    event_id = await make_event(db, capacity=3, available=0, waiting=1)
    await add_bookings(
        db, event_id, [confirmed(), left(1, 5), promoted(2, 10), promoted(3, 20), waiting(4)]
    )
    reports = await check_invariants(db.url, [event_id])
    assert reports[event_id].confirmed == 3
    assert reports[event_id].waiting == 1


async def test_promotion_past_someone_still_waiting_is_caught(db: Database) -> None:
    event_id = await make_event(db, capacity=2, available=0, waiting=1)
    await add_bookings(db, event_id, [confirmed(), waiting(1), promoted(2, 10)])
    with pytest.raises(InvariantBroken, match="promoted ahead of"):
        await check_invariants(db.url, [event_id])


async def test_promotion_before_an_earlier_one_left_is_caught(db: Database) -> None:
    event_id = await make_event(db, capacity=2, available=0, waiting=0)
    await add_bookings(db, event_id, [confirmed(), left(1, 30), promoted(2, 10)])
    with pytest.raises(InvariantBroken, match=r"promoted ahead of .*left"):
        await check_invariants(db.url, [event_id])


async def test_promotions_out_of_time_order_are_caught(db: Database) -> None:
    event_id = await make_event(db, capacity=3, available=0, waiting=0)
    await add_bookings(db, event_id, [confirmed(), promoted(1, 20), promoted(2, 10)])
    with pytest.raises(InvariantBroken, match=r"line 2\) promoted ahead of .*line 1"):
        await check_invariants(db.url, [event_id])


async def test_counts_that_disagree_are_caught_and_collected(db: Database) -> None:
    good = await make_event(db, capacity=2, available=1, waiting=0)
    await add_bookings(db, good, [confirmed()])
    drifted = await make_event(db, capacity=2, available=1, waiting=0)
    await add_bookings(db, drifted, [confirmed()])
    async with connect(db.url) as engine, engine.begin() as conn:
        await conn.execute(update(Event).where(Event.id == drifted).values(capacity=3))

    with pytest.raises(InvariantBroken, match=r"1 confirmed \+ 1 available != 3"):
        await check_invariants(db.url, [good, drifted])
    findings = await find_invariant_breaks(db.url, [good, drifted])
    assert not findings.ok
    assert set(findings.reports) == {good}
    assert set(findings.breaks) == {drifted}
