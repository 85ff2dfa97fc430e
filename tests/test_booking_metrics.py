"""The booking counters count committed changes only; lock retries are counted where they run."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service import metrics
from booking_service.bench.seed import create_users
from booking_service.db import RetryHooks, connect, create_session_factory, run_transaction
from booking_service.errors import ServiceBusy
from booking_service.metrics import BookingOutcome
from booking_service.models import User
from tests.support.api import TokenFactory, create_event
from tests.support.databases import Database, wipe_tables


def outcome_counts() -> dict[str, float]:
    return {
        outcome.value: REGISTRY.get_sample_value(
            "booking_outcomes_total", {"outcome": outcome.value}
        )
        or 0.0
        for outcome in BookingOutcome
    }


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_each_committed_change_is_counted_once(
    client: httpx.AsyncClient, database: Database, tokens: TokenFactory
) -> None:
    alice, bob, carol = (tokens.headers(uid) for uid in await create_users(database.url, 3))
    event_id = await create_event(client, alice, tickets=1)
    before = outcome_counts()

    async def post(path: str, headers: dict[str, str], expected: int) -> None:
        response = await client.post(path, json={"eventId": event_id}, headers=headers)
        assert response.status_code == expected, response.text

    await post("/book", alice, 201)  # booked
    await post("/book", bob, 202)  # waitlisted
    await post("/book", bob, 409)  # refused: counts nothing
    await post("/book", carol, 202)  # waitlisted
    await post("/cancel", carol, 200)  # left_line
    await post("/cancel", alice, 200)  # cancelled, and bob promoted
    await post("/cancel", bob, 200)  # cancelled, ticket released
    await post("/cancel", bob, 404)  # nothing to cancel: counts nothing

    after = outcome_counts()
    assert {name: after[name] - before[name] for name in after} == {
        "booked": 1,
        "waitlisted": 2,
        "promoted": 1,
        "cancelled": 2,
        "left_line": 1,
        "offered": 0,  # instant mode: a freed ticket is booked, not offered
    }


@pytest.mark.mariadb
async def test_lock_retries_and_giving_up_are_counted(mariadb_database: Database) -> None:
    url = mariadb_database.url
    [user_id] = await create_users(url, 1)
    retries_before = counter("booking_lock_retries_total")
    busy_before = counter("booking_busy_total")
    try:
        async with connect(url) as engine, engine.connect() as holder:
            await holder.begin()
            await holder.execute(select(User.id).where(User.id == user_id).with_for_update())
            # As the app wires them: the metrics hear of retries through the hooks.
            hooks = RetryHooks(retried=metrics.count_lock_retry, gave_up=metrics.count_gave_up)
            async with create_session_factory(engine, retry_hooks=hooks)() as session:

                async def wait_for_the_locked_row(s: AsyncSession = session) -> None:
                    await s.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))
                    await s.execute(select(User.id).where(User.id == user_id).with_for_update())

                with pytest.raises(ServiceBusy):
                    await run_transaction(session, wait_for_the_locked_row, retries=1)
            await holder.rollback()
    finally:
        await wipe_tables(url)
    assert counter("booking_lock_retries_total") == retries_before + 1
    assert counter("booking_busy_total") == busy_before + 1
