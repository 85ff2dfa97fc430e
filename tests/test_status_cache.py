"""GET /status during a sale: polls answered from a recent snapshot, misses sharing one read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import update

from booking_service.app_state import app_state
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import Event
from booking_service.services.events import StatusCache
from tests.support.api import TokenFactory, book, create_event, event_status
from tests.support.apps import http_client, started_app
from tests.support.databases import Database, wipe_tables
from tests.support.settings import make_settings


@pytest.fixture
async def wipe_tables_after(database: Database) -> AsyncIterator[None]:
    """These tests write through apps of their own, not through the `client` fixture that
    empties the tables after each test: this does it for them."""
    yield
    await wipe_tables(database.url)


@pytest.mark.usefixtures("wipe_tables_after")
async def test_polls_share_reads_and_lag_at_most_the_configured_age(database: Database) -> None:
    settings = make_settings(database.url, status_cache_seconds=0.5)
    tokens = TokenFactory(settings)
    owner, booker = await create_users(database.url, 2, prefix="poll-age-")
    async with started_app(settings) as app, http_client(app) as http:
        event_id = await create_event(http, tokens.headers(owner), 3, name="Gig")
        reads: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if statement.lstrip().upper().startswith("SELECT EVENT.ID, EVENT.NAME"):
                reads.append(statement)

        sqlalchemy_event.listen(app_state(app).engine.sync_engine, "before_cursor_execute", count)
        try:
            polls = await asyncio.gather(
                *(event_status(http, tokens.headers(owner), event_id) for _ in range(20))
            )
            assert {p["available_tickets"] for p in polls} == {3}
            assert len(reads) == 1, "twenty concurrent polls, one read"

            # A change this worker commits is seen at once.
            booked = await book(http, tokens.headers(booker), event_id)
            assert booked.status_code == 201
            mine = await event_status(http, tokens.headers(owner), event_id)
            assert mine["available_tickets"] == 2
            assert len(reads) == 2

            # A change made elsewhere (another worker, here straight in the database) is seen
            # once the snapshot is older than the configured age, not before.
            async with connect(database.url) as engine, engine.begin() as conn:
                await conn.execute(
                    update(Event).where(Event.id == event_id).values(name="Renamed elsewhere")
                )
            stale = await event_status(http, tokens.headers(owner), event_id)
            assert stale["event_name"] == "Gig", "within the age: the snapshot"
            await asyncio.sleep(0.55)
            fresh = await event_status(http, tokens.headers(owner), event_id)
            assert fresh["event_name"] == "Renamed elsewhere", "past the age: read again"
            assert len(reads) == 3
        finally:
            sqlalchemy_event.remove(
                app_state(app).engine.sync_engine, "before_cursor_execute", count
            )


@pytest.mark.usefixtures("wipe_tables_after")
async def test_an_unknown_event_is_never_cached(database: Database) -> None:
    settings = make_settings(database.url, status_cache_seconds=60)
    tokens = TokenFactory(settings)
    [owner] = await create_users(database.url, 1, prefix="poll-unknown-")
    async with started_app(settings) as app, http_client(app) as http:
        headers = tokens.headers(owner)
        missing = await asyncio.gather(
            *(http.get("/status/424242", headers=headers) for _ in range(5))
        )
        assert {m.status_code for m in missing} == {404}
        event_id = await create_event(http, headers, 1)
        await event_status(http, headers, event_id)  # asserts 200


async def test_zero_means_every_poll_reads() -> None:
    cache = StatusCache(0)
    loads = 0

    async def load() -> object:
        nonlocal loads
        loads += 1
        return object()

    await cache.get(1, load)  # type: ignore[arg-type]
    await cache.get(1, load)  # type: ignore[arg-type]
    assert loads == 2


async def test_a_read_started_before_a_change_is_not_kept_after_it() -> None:
    cache = StatusCache(60)
    release = asyncio.Event()
    loads = 0

    async def slow_load() -> object:
        nonlocal loads
        loads += 1
        await release.wait()
        return f"snapshot {loads}"

    first = asyncio.create_task(cache.get(1, slow_load))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    cache.forget([1])  # a change commits while that read is in flight
    release.set()
    assert await first == "snapshot 1"  # its caller gets what it read...
    assert await cache.get(1, slow_load) == "snapshot 2"  # type: ignore[arg-type]
    assert loads == 2, "...but the next poll reads again"


async def test_changes_to_events_nobody_reads_leave_nothing_behind() -> None:
    cache = StatusCache(60)

    async def load() -> object:
        return "snapshot"

    for event_id in range(1, 1001):
        await cache.get(event_id, load)  # type: ignore[arg-type]
        cache.forget([event_id])
    cache.forget(range(1001, 5001))  # changed, never polled
    assert cache._generations == {}, "one entry per event ever changed, kept forever"


async def test_a_read_outlived_by_a_later_one_is_still_not_kept() -> None:
    """A read that a change overtook, still in flight after a later read of the same event has
    come and gone, and after more changes: it must not be kept, whatever happened meanwhile."""
    cache = StatusCache(60)
    slow_release, later_release = asyncio.Event(), asyncio.Event()

    async def slow_load() -> object:
        await slow_release.wait()
        return "read before the changes"

    async def later_load() -> object:
        await later_release.wait()
        return "later"

    async def fresh_load() -> object:
        return "fresh"

    slow = asyncio.create_task(cache.get(1, slow_load))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    cache.forget([1])
    later = asyncio.create_task(cache.get(1, later_load))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    later_release.set()
    assert await later == "later"
    cache.forget([1])
    third = asyncio.create_task(cache.get(1, later_load))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    cache.forget([1])
    assert await third == "later"
    slow_release.set()
    assert await slow == "read before the changes"
    assert await cache.get(1, fresh_load) == "fresh"  # type: ignore[arg-type]


async def test_a_poll_sharing_a_read_whose_caller_went_away_reads_for_itself() -> None:
    """The shared read runs in the first poll's request; if that request is cancelled (its
    server shutting down, a timeout around it), the polls that joined it did not go away:
    they read for themselves instead of inheriting the cancellation."""
    cache = StatusCache(60)
    first_read_started = asyncio.Event()
    loads = 0

    async def load() -> object:
        nonlocal loads
        loads += 1
        if loads == 1:
            first_read_started.set()
            await asyncio.Event().wait()  # until cancelled
        return f"snapshot {loads}"

    leader = asyncio.create_task(cache.get(1, load))  # type: ignore[arg-type]
    await first_read_started.wait()
    follower = asyncio.create_task(cache.get(1, load))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the follower joins the read in flight
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await asyncio.wait_for(follower, 5) == "snapshot 2"
    assert await cache.get(1, load) == "snapshot 2", "and what it read is the snapshot"  # type: ignore[arg-type]
