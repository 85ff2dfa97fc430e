"""A booking whose event changes just before it locks the row: a cancel commits in between.

A booking locks the event row (`SELECT ... FOR UPDATE`) and decides from it: a ticket if one
is free, else a place on the waiting list. A cancel that commits just before that lock must
count: the ticket it freed is taken, and a place counts from the waiting list as the cancel
left it. Random storms land there only now and then. These tests pause the booking just before
its lock, run a cancel to completion, and let the booking go on: the real engine and the real
database, with one pause point wrapped around the repository function the booking calls.

(The booking once took a ticket with a conditional UPDATE first and locked the row only when
that found none: on MariaDB under READ COMMITTED, an UPDATE that matched nothing released the
row at once, and a cancel could commit between the two statements. These tests held that gap.)

The cancel comes from another worker (its own coalescer, as another process would have): within
one worker it would wait behind the paused booking. On SQLite the cancel would wait: BEGIN
IMMEDIATE holds the write lock for the whole booking.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.repositories import events
from booking_service.repositories.events import LockedEvent
from booking_service.services.booking_rules import BookOrCancel, RequestKind
from booking_service.services.cancels import Cancelled, CancelOutcome
from booking_service.services.coalescer import Coalescer
from tests.support.api import TokenFactory, api_users, book, create_event, event_status
from tests.support.databases import Database

PAUSE_SECONDS = 10.0


@asynccontextmanager
async def paused_before_locking(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Event]]:
    """The next booking to lock the event row stops just before it: (paused, resume)."""
    paused, resume = asyncio.Event(), asyncio.Event()
    real: Callable[[AsyncSession, Collection[int]], Awaitable[dict[int, LockedEvent]]] = (
        events.get_events_for_update
    )
    armed = True

    async def get_events_for_update(
        session: AsyncSession, event_ids: Collection[int]
    ) -> dict[int, LockedEvent]:
        nonlocal armed
        if armed:
            armed = False
            paused.set()
            await asyncio.wait_for(resume.wait(), PAUSE_SECONDS)
        return await real(session, event_ids)

    monkeypatch.setattr(events, "get_events_for_update", get_events_for_update)
    try:
        yield paused, resume
    finally:
        monkeypatch.setattr(events, "get_events_for_update", real)


async def cancel_in_another_worker(app: FastAPI, user_id: int, event_id: int) -> CancelOutcome:
    coalescer = Coalescer(app_state(app).session_factory, group_max=1, lock_retries=3)
    outcome = await coalescer.serve(BookOrCancel(RequestKind.CANCEL, event_id, user_id))
    assert isinstance(outcome, Cancelled)
    return outcome.outcome


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
        await asyncio.wait_for(paused.wait(), PAUSE_SECONDS)  # about to lock the event
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
