"""The gap inside a booking, forced open: a cancel commits between its two statements.

A booking first tries `UPDATE event SET available = available - 1 WHERE id = ? AND
available > 0`. When that finds no ticket, it locks the row (`SELECT ... FOR UPDATE`) and
joins the line. On MariaDB under READ COMMITTED, an UPDATE that did not have to wait and
matched nothing releases the row at once, so a cancel can commit in between (checked on
10.11: under contention the UPDATE keeps the lock, uncontended it does not). Random storms
land in that gap only now and then. These tests pause the booking there, run a cancel to
completion, and let the booking go on: the real engine and the real database, with one
pause point wrapped around the repository function the booking calls next.

The cancel comes from another worker (its own queue, as another process would have): within
one worker it would queue behind the paused booking. SQLite cannot open this gap: BEGIN
IMMEDIATE holds the write lock for the whole booking.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.repositories import events
from booking_service.repositories.events import LockedEvent
from booking_service.services.booking_queue import BookingQueue
from booking_service.services.cancels import CancelOutcome
from tests.support.api import TokenFactory, api_users, book, create_event, event_status
from tests.support.databases import Database

PAUSE_SECONDS = 10.0


@asynccontextmanager
async def paused_before_locking(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Event]]:
    """The next booking to lock the event row stops just before it: (paused, resume)."""
    paused, resume = asyncio.Event(), asyncio.Event()
    real: Callable[[AsyncSession, int], Awaitable[LockedEvent | None]] = events.get_event_for_update
    armed = True

    async def get_event_for_update(session: AsyncSession, event_id: int) -> LockedEvent | None:
        nonlocal armed
        if armed:
            armed = False
            paused.set()
            await asyncio.wait_for(resume.wait(), PAUSE_SECONDS)
        return await real(session, event_id)

    monkeypatch.setattr(events, "get_event_for_update", get_event_for_update)
    try:
        yield paused, resume
    finally:
        monkeypatch.setattr(events, "get_event_for_update", real)


async def cancel_in_another_worker(app: FastAPI, user_id: int, event_id: int) -> CancelOutcome:
    queue = BookingQueue(app_state(app).session_factory, max_batch=1, lock_retries=3)
    return await queue.cancel(user_id=user_id, event_id=event_id)


@pytest.fixture
def mariadb_only(database: Database) -> None:
    if database.backend != "mariadb":
        pytest.skip("SQLite holds its write lock for the whole booking: no gap to open")


@pytest.mark.usefixtures("mariadb_only")
async def test_a_ticket_freed_inside_the_gap_is_taken(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody waits; the cancel frees the ticket while the booking is between statements.
    The booking must take it, not join the line beside it (the next booker would take it
    and jump the line)."""
    holder, booker, next_booker = await api_users(database.url, tokens, 3)
    event_id = await create_event(client, holder.headers, tickets=1)
    assert (await book(client, holder.headers, event_id)).status_code == 201

    async with paused_before_locking(monkeypatch) as (paused, resume):
        booking = asyncio.create_task(book(client, booker.headers, event_id))
        await asyncio.wait_for(paused.wait(), PAUSE_SECONDS)  # its UPDATE found no ticket
        cancelled = await cancel_in_another_worker(app, holder.id, event_id)
        resume.set()
        booked = await booking

    assert cancelled is CancelOutcome.RELEASED
    assert booked.status_code == 201, f"joined the line beside a free ticket: {booked.text}"
    status = await event_status(client, holder.headers, event_id)
    assert (status["available_tickets"], status["waiting_list_count"]) == (0, 0)
    assert (await book(client, next_booker.headers, event_id)).json()["position"] == 1
    await check_invariants(database.url, [event_id])


@pytest.mark.usefixtures("mariadb_only")
async def test_a_ticket_reassigned_inside_the_gap_puts_the_booker_next_in_line(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone waits; the cancel hands them the ticket while the booking is between
    statements. The booking joins the line, and its place counts from the line as it is
    now (1), not as it was when its first statement ran (2)."""
    holder, first, booker = await api_users(database.url, tokens, 3)
    event_id = await create_event(client, holder.headers, tickets=1)
    assert (await book(client, holder.headers, event_id)).status_code == 201
    assert (await book(client, first.headers, event_id)).json()["position"] == 1

    async with paused_before_locking(monkeypatch) as (paused, resume):
        booking = asyncio.create_task(book(client, booker.headers, event_id))
        await asyncio.wait_for(paused.wait(), PAUSE_SECONDS)
        cancelled = await cancel_in_another_worker(app, holder.id, event_id)
        resume.set()
        booked = await booking

    assert cancelled is CancelOutcome.REASSIGNED
    assert booked.status_code == 202, booked.text
    assert booked.json()["position"] == 1
    status = await event_status(client, holder.headers, event_id)
    assert (status["available_tickets"], status["waiting_list_count"]) == (0, 1)
    await check_invariants(database.url, [event_id])
