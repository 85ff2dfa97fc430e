"""Idempotent retries and webhook delivery on a real `booking-service serve --workers 2` over
MariaDB: the two workers share nothing but the database, and still one key makes one effect
and one promotion makes one delivered message."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import Booking, BookingStatus, Event, OutboxMessage
from tests.support.api import TokenFactory, assert_one_answer, book, cancel, create_event
from tests.support.databases import Database, create_mariadb_database
from tests.support.environment import require_mariadb
from tests.support.peers import WebhookReceiver
from tests.support.servers import ServerProcess, serve
from tests.support.settings import TEST_SECRET, make_settings
from tests.support.timing import eventually

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

WEBHOOK_SECRET = "server-webhook-secret-" + "s" * 32


@dataclass
class Deployment:
    server: ServerProcess
    database: Database
    receiver: WebhookReceiver
    tokens: TokenFactory


@pytest.fixture(scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    await require_mariadb()
    workdir = tmp_path_factory.mktemp("two-workers")
    async with create_mariadb_database() as database:
        with (
            WebhookReceiver() as receiver,
            serve(
                workdir,
                workers=2,
                DATABASE_URL=database.url,
                JWT_SECRET=TEST_SECRET,
                RATE_LIMIT_ENABLED="false",
                # Few idle connections: the MariaDB server is shared with other test runs.
                DB_POOL_SIZE="4",
                DB_MAX_OVERFLOW="16",
                WEBHOOK_URL=receiver.url,
                WEBHOOK_SECRET=WEBHOOK_SECRET,
                WEBHOOK_POLL_SECONDS="0.05",
            ) as server,
        ):
            yield Deployment(server, database, receiver, TokenFactory(make_settings(database.url)))


async def _rush(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> list[httpx.Response]:
    return await asyncio.gather(*(http.post(path, json=body, headers=headers) for _ in range(20)))


async def test_twenty_at_once_with_one_key_take_effect_once_across_workers(
    deployment: Deployment,
) -> None:
    url = deployment.database.url
    owner, alice, bob = await create_users(url, 3, prefix="rush")
    headers = {uid: deployment.tokens.headers(uid) for uid in (owner, alice, bob)}
    async with httpx.AsyncClient(base_url=deployment.server.base_url, timeout=30) as http:
        created = assert_one_answer(
            await _rush(
                http,
                "/initialize",
                {"name": "Two workers", "tickets": 1},
                {**headers[owner], "Idempotency-Key": "create-1"},
            )
        )
        event_id = created.json()["eventId"]
        booked = assert_one_answer(
            await _rush(
                http, "/book", {"eventId": event_id}, {**headers[alice], "Idempotency-Key": "b-1"}
            )
        )
        assert booked.status_code == 201
        waiting = await book(http, headers[bob], event_id)
        assert waiting.status_code == 202
        cancelled = assert_one_answer(
            await _rush(
                http, "/cancel", {"eventId": event_id}, {**headers[alice], "Idempotency-Key": "c-1"}
            )
        )
        assert cancelled.json()["outcome"] == "reassigned"

    async with connect(url) as engine, engine.connect() as conn:
        events = (await conn.execute(select(Event.id).where(Event.owner_id == owner))).all()
        claims = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
    assert len(events) == 1
    assert Counter((row.user_id, row.status) for row in claims) == {
        (alice, BookingStatus.CANCELLED): 1,
        (bob, BookingStatus.CONFIRMED): 1,
    }
    await check_invariants(url, [event_id])


async def test_each_promotion_is_delivered_once_by_one_of_the_workers(
    deployment: Deployment,
) -> None:
    url = deployment.database.url
    owner, *people = await create_users(url, 21, prefix="hook")
    holders, waiters = people[:10], people[10:20]
    auth = deployment.tokens.headers
    async with httpx.AsyncClient(base_url=deployment.server.base_url, timeout=30) as http:
        event_ids = [await create_event(http, auth(owner), 1, name="Hooked") for _ in range(10)]
        for event_id, holder, waiter in zip(event_ids, holders, waiters, strict=True):
            await book(http, auth(holder), event_id)
            await book(http, auth(waiter), event_id)
        cancels = await asyncio.gather(
            *(
                cancel(http, auth(holder), event_id)
                for event_id, holder in zip(event_ids, holders, strict=True)
            )
        )
    assert {r.json()["outcome"] for r in cancels} == {"reassigned"}

    async def all_delivered() -> list[Any]:
        async with connect(url) as engine, engine.connect() as conn:
            rows = (await conn.execute(select(OutboxMessage))).all()
        ours = [row for row in rows if json.loads(row.body)["data"]["event_id"] in event_ids]
        return ours if len(ours) == 10 and all(r.delivered_at for r in ours) else []

    rows = await eventually(all_delivered, what="ten deliveries")
    assert all(row.attempts == 1 for row in rows)
    received = Counter(post.headers["x-booking-message-id"] for post in deployment.receiver.posts())
    for row in rows:
        assert received[row.message_id] == 1, f"{row.message_id} posted {received[row.message_id]}x"
    promoted = {json.loads(row.body)["data"]["user_id"] for row in rows}
    assert promoted == set(waiters)
