"""check_invariants is the verdict of every concurrency test: it must notice a broken rule.
Each test builds a valid event through the API, breaks one rule behind the service's back,
and expects the check to say so."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert, select, update

from booking_service.bench.invariants import (
    InvariantBroken,
    check_invariants,
    find_invariant_breaks,
)
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import Booking, BookingHistory, BookingStatus, Event, HistoryAction
from booking_service.models.types import utcnow
from tests.support.api import create_event, fill_event, register_and_login
from tests.support.databases import Database


@pytest.fixture
async def event_with_line(client: httpx.AsyncClient) -> int:
    """One ticket held by Ann, and Ben then Cat in line, in an event in offer mode."""
    headers = {
        name: await register_and_login(client, name) for name in ("own", "ann", "ben", "cat")
    }
    bookers = [headers[name] for name in ("ann", "ben", "cat")]
    return await fill_event(client, headers["own"], bookers, 1, waitlist_mode="offer")


async def _line(url: str, event_id: int) -> list[tuple[int, int]]:
    """(booking id, user id) of the people in line, in line order."""
    async with connect(url) as engine, engine.connect() as conn:
        rows = await conn.execute(
            select(Booking.id, Booking.user_id)
            .where(Booking.event_id == event_id, Booking.status == BookingStatus.WAITLISTED)
            .order_by(Booking.line_seq)
        )
        return [(row.id, row.user_id) for row in rows]


async def test_a_valid_event_passes(event_with_line: int, database: Database) -> None:
    report = await check_invariants(database.url, [event_with_line])
    assert (report[event_with_line].confirmed, report[event_with_line].waiting) == (1, 2)
    assert report[event_with_line].history_entries == 3


async def test_an_offer_that_holds_no_ticket_is_caught(
    event_with_line: int, database: Database
) -> None:
    [(first, _), _] = await _line(database.url, event_with_line)
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(
            update(Booking)
            .where(Booking.id == first)
            .values(status=BookingStatus.OFFERED, offer_expires_at=utcnow())
        )
    with pytest.raises(InvariantBroken, match="oversold"):
        await check_invariants(database.url, [event_with_line])


async def test_an_offer_out_of_line_order_is_caught(
    event_with_line: int, database: Database
) -> None:
    [_, (second, second_user)] = await _line(database.url, event_with_line)
    now = utcnow()
    async with connect(database.url) as engine, engine.begin() as conn:
        # The second in line gets the offer, with every counter and record right.
        await conn.execute(
            update(Booking)
            .where(Booking.id == second)
            .values(status=BookingStatus.OFFERED, offer_expires_at=now + timedelta(minutes=5))
        )
        await conn.execute(
            update(Event)
            .where(Event.id == event_with_line)
            .values(capacity=2, offered_count=1, waiting_count=1, waiting_tickets=1)
        )
        await conn.execute(
            insert(BookingHistory).values(
                booking_id=second,
                event_id=event_with_line,
                user_id=second_user,
                action=HistoryAction.OFFERED,
                created_at=now,
            )
        )
    with pytest.raises(InvariantBroken, match="ahead of line"):
        await check_invariants(database.url, [event_with_line])


async def test_a_change_missing_from_the_history_is_caught(
    event_with_line: int, database: Database
) -> None:
    [(first, _), _] = await _line(database.url, event_with_line)
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(
            update(Booking)
            .where(Booking.id == first)
            .values(status=BookingStatus.LEFT, active=None, ended_at=utcnow())
        )
        await conn.execute(
            update(Event)
            .where(Event.id == event_with_line)
            .values(waiting_count=1, waiting_tickets=1)
        )
    with pytest.raises(InvariantBroken, match="its history says"):
        await check_invariants(database.url, [event_with_line])


async def test_a_ticket_taken_from_the_pool_while_someone_waits_is_caught(
    client: httpx.AsyncClient, database: Database
) -> None:
    # The end state can look right: Ben joins the line beside a free ticket, then Cat takes
    # that ticket. Only the order of the history shows that Cat jumped the line.
    headers = {name: await register_and_login(client, name) for name in ("own", "ann")}
    event_id = await create_event(client, headers["own"], tickets=2)
    await client.post("/book", json={"eventId": event_id}, headers=headers["ann"])
    ben, cat = await create_users(database.url, 2, prefix="late")
    now = utcnow()
    async with connect(database.url) as engine, engine.begin() as conn:
        for user_id, status, action, line_seq in (
            (ben, BookingStatus.WAITLISTED, HistoryAction.WAITLISTED, 1),
            (cat, BookingStatus.CONFIRMED, HistoryAction.BOOKED, None),
        ):
            result = await conn.execute(
                insert(Booking).values(
                    event_id=event_id,
                    user_id=user_id,
                    status=status,
                    active=1,
                    line_seq=line_seq,
                    created_at=now,
                    confirmed_at=now if line_seq is None else None,
                )
            )
            assert result.inserted_primary_key is not None
            await conn.execute(
                insert(BookingHistory).values(
                    booking_id=result.inserted_primary_key[0],
                    event_id=event_id,
                    user_id=user_id,
                    action=action,
                    created_at=now,
                )
            )
        await conn.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(available=0, waiting_count=1, waiting_tickets=1, next_line_seq=2)
        )
    with pytest.raises(InvariantBroken, match=r"booked 1 \(history \d+\) while line 1 waited"):
        await check_invariants(database.url, [event_id])


async def test_every_broken_event_is_collected_for_the_benchmark(
    client: httpx.AsyncClient, database: Database
) -> None:
    owner = await register_and_login(client, "owner")
    good = await create_event(client, owner, tickets=2)
    drifted = await create_event(client, owner, tickets=2)
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(update(Event).where(Event.id == drifted).values(capacity=3))
    with pytest.raises(InvariantBroken, match=r"0 confirmed \+ 0 offered \+ 2 available != 3"):
        await check_invariants(database.url, [good, drifted])
    findings = await find_invariant_breaks(database.url, [good, drifted])
    assert not findings.ok
    assert set(findings.reports) == {good}
    assert set(findings.breaks) == {drifted}
