"""Promotion webhooks: an outbox message written with the promotion, and a delivery loop that
posts it, signed, to a receiver on loopback until it is accepted, once per message."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.app_state import app_state
from booking_service.config import Settings
from booking_service.db import connect
from booking_service.errors import IdempotencyKeyInUse
from booking_service.models import OutboxMessage
from booking_service.models.types import utcnow
from booking_service.repositories import outbox
from booking_service.services.bookings import BookingService
from booking_service.services.idempotency import IdempotencyService
from booking_service.services.webhooks import (
    MESSAGE_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookSender,
    backoff_seconds,
    purge_outbox,
    sign,
)
from tests.support.api import (
    ApiUser,
    TokenFactory,
    api_users,
    book,
    cancel,
    create_event,
    fill_event,
    my_bookings,
)
from tests.support.apps import http_client, started_app
from tests.support.databases import Database
from tests.support.peers import WebhookReceiver
from tests.support.servers import free_port
from tests.support.settings import make_settings
from tests.support.timing import eventually

SECRET = "webhook-secret-" + "w" * 40


def webhook_settings(database: Database, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_url": url,
        "webhook_secret": SECRET,
        "webhook_poll_seconds": 0.05,
        "webhook_backoff_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.2,
        "webhook_timeout_seconds": 2,
    }
    return make_settings(database.url, **(values | overrides))


def verified(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (the README's example)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


async def messages(url: str) -> list[Any]:
    async with connect(url) as engine, engine.connect() as conn:
        return list((await conn.execute(select(OutboxMessage).order_by(OutboxMessage.id))).all())


def message_when(database: Database, column: str) -> Callable[[], Awaitable[Any]]:
    """For `eventually`: the one message in the outbox, once `column` is set."""

    async def check() -> Any:
        [message] = await messages(database.url)
        return message if getattr(message, column) is not None else None

    return check


@pytest.fixture
async def users(
    client: httpx.AsyncClient, database: Database, tokens: TokenFactory
) -> list[ApiUser]:
    # Depends on `client`, which wipes the tables after the test.
    return await api_users(database.url, tokens, 4)


async def promote_someone(http: httpx.AsyncClient, users: list[ApiUser]) -> int:
    """Event with one ticket: users[1] holds it, users[2] waits, users[1] cancels. Returns the
    promoted booking's id."""
    owner, holder, waiter = (u.headers for u in users[:3])
    event_id = await create_event(http, owner, 1)
    assert (await book(http, holder, event_id)).status_code == 201
    waiting = await book(http, waiter, event_id)
    assert waiting.status_code == 202
    cancelled = await cancel(http, holder, event_id)
    assert cancelled.json()["outcome"] == "reassigned"
    booking_id: int = waiting.json()["bookingId"]
    return booking_id


async def test_a_promotion_writes_one_message_and_nothing_else_does(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    booking_id = await promote_someone(client, users)
    promoted = await my_bookings(client, users[2].headers)
    # Leaving the line, and a cancel with nobody waiting, announce nothing.
    event_id = promoted[0]["eventId"]
    await book(client, users[3].headers, event_id)
    await cancel(client, users[3].headers, event_id)
    await cancel(client, users[2].headers, event_id)

    [message] = await messages(database.url)
    assert message.kind == "booking.promoted"
    assert (message.attempts, message.delivered_at) == (0, None)
    body = json.loads(message.body)
    assert body["id"] == message.message_id
    assert body["type"] == "booking.promoted"
    assert body["data"] == {
        "booking_id": booking_id,
        "event_id": event_id,
        "user_id": users[2].id,
        "quantity": 1,
        "promoted_at": body["data"]["promoted_at"],
    }
    promoted_at = datetime.fromisoformat(body["data"]["promoted_at"])
    assert promoted_at == datetime.fromisoformat(promoted[0]["promoted_at"])
    assert body["created_at"].endswith("Z")


async def test_an_offer_writes_a_message_with_its_deadline(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, holder, waiter = (u.headers for u in users[:3])
    event_id = await create_event(client, owner, 1, waitlist_mode="offer", offer_seconds=600)
    await book(client, holder, event_id)
    waiting = await book(client, waiter, event_id)
    cancelled = await cancel(client, holder, event_id)
    assert cancelled.json()["outcome"] == "offered"

    [message] = await messages(database.url)
    assert message.kind == "booking.offered"
    data = json.loads(message.body)["data"]
    assert (data["booking_id"], data["event_id"], data["user_id"]) == (
        waiting.json()["bookingId"],
        event_id,
        users[2].id,
    )
    offered_at = datetime.fromisoformat(data["offered_at"])
    expires_at = datetime.fromisoformat(data["expires_at"])
    assert (expires_at - offered_at).total_seconds() == 600
    mine = (await my_bookings(client, waiter))[0]
    assert datetime.fromisoformat(mine["offer_expires_at"]) == expires_at


async def test_a_promotion_rolled_back_leaves_no_message(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    users: list[ApiUser],
) -> None:
    owner, holder, waiter = (u.headers for u in users[:3])
    event_id = await fill_event(client, owner, [holder, waiter], 1)
    async with app_state(app).session_factory() as session:
        keys = IdempotencyService(session, ttl_seconds=60, lease_seconds=0, lock_retries=0)
        lost = await keys.hold(user_id=users[1].id, key_digest="a" * 64, request_digest="r" * 64)
        await keys.hold(user_id=users[1].id, key_digest="a" * 64, request_digest="r" * 64)
        assert lost.kept is None
        # The cancel promotes, then fails at its very end (its idempotency key was taken over):
        # the promotion and its message go together.
        service = BookingService(
            lambda: session,
            coalescer=app_state(app).coalescer,
            ticket_codes=app_state(app).ticket_codes,
            lock_retries=0,
        )
        with pytest.raises(IdempotencyKeyInUse):
            await service.cancel(user_id=users[1].id, event_id=event_id, key=lost)
    assert await messages(database.url) == []
    waiting = await my_bookings(client, waiter)
    assert waiting[0]["status"] == "waitlisted"


async def test_a_failing_receiver_gets_the_message_until_it_accepts_it_once(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    with WebhookReceiver(statuses=[500, 503]) as receiver:
        async with started_app(webhook_settings(database, receiver.url)) as app:
            async with http_client(app) as http:
                booking_id = await promote_someone(http, users)

            message = await eventually(message_when(database, "delivered_at"), what="delivery")
            # Nothing more to send: the outbox is done with it.
            assert await app_state(app).webhook_sender.deliver_due() == 0
        posts = receiver.posts()

    assert message.attempts == 3
    assert (message.due_at, message.lease_token, message.gave_up_at) == (None, None, None)
    assert message.last_error == "HTTP 503"
    assert [message.delivered_at] == [m.delivered_at for m in await messages(database.url)]
    assert len(posts) == 3, "two failures, then the one accepted"
    assert {post.body for post in posts} == {message.body.encode()}
    assert {post.headers[MESSAGE_ID_HEADER.lower()] for post in posts} == {message.message_id}
    for post in posts:
        assert verified(SECRET, post.body, post.headers[SIGNATURE_HEADER.lower()])
        assert not verified("another-secret", post.body, post.headers[SIGNATURE_HEADER.lower()])
        assert post.headers["content-type"] == "application/json"
        assert post.headers["x-booking-message-type"] == "booking.promoted"
    assert json.loads(posts[0].body)["data"]["booking_id"] == booking_id


async def test_an_unreachable_receiver_never_fails_a_booking_and_is_given_up_at_last(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    settings = webhook_settings(database, dead_url, webhook_max_attempts=3)
    async with started_app(settings) as app:
        async with http_client(app) as http:
            await promote_someone(http, users)

        message = await eventually(message_when(database, "gave_up_at"), what="giving up")
        assert await app_state(app).webhook_sender.deliver_due() == 0
    assert message.attempts == 3
    assert (message.due_at, message.delivered_at) == (None, None)
    assert message.last_error.startswith("ConnectError")


async def test_a_receiver_too_slow_to_answer_counts_as_a_failure(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    with WebhookReceiver(delays=[1.5]) as receiver:
        settings = webhook_settings(database, receiver.url, webhook_timeout_seconds=0.3)
        async with started_app(settings) as app:
            async with http_client(app) as http:
                await promote_someone(http, users)

            message = await eventually(message_when(database, "delivered_at"), what="delivery")
    assert message.attempts == 2
    assert "Timeout" in message.last_error


async def test_two_senders_racing_post_each_message_once(
    client: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    async with app_state(app).session_factory() as session, session.begin():
        ids = await outbox.enqueue_many(
            session, [("test.message", {"n": n, "at": utcnow()}) for n in range(30)]
        )
    assert len(set(ids)) == 30
    with WebhookReceiver() as receiver:
        settings = webhook_settings(database, receiver.url, webhook_batch_size=4)
        async with httpx.AsyncClient() as http:
            senders = [
                WebhookSender(app_state(app).session_factory, settings, http) for _ in range(2)
            ]

            async def drain(sender: WebhookSender) -> int:
                total = 0
                while sent := await sender.deliver_due():
                    total += sent
                return total

            counts = await asyncio.gather(*(drain(sender) for sender in senders))
        posts = receiver.posts()
    assert sum(counts) == 30
    assert Counter(post.headers[MESSAGE_ID_HEADER.lower()] for post in posts) == dict.fromkeys(
        ids, 1
    )
    rows = await messages(database.url)
    assert all(row.delivered_at is not None and row.attempts == 1 for row in rows)


async def test_old_messages_are_purged_and_given_up_ones_kept(
    client: httpx.AsyncClient, database: Database
) -> None:
    now = utcnow()
    old, recent = now - timedelta(days=30), now - timedelta(minutes=5)
    rows = {
        "delivered long ago": {"delivered_at": old, "due_at": None},
        "delivered recently": {"delivered_at": recent, "due_at": None},
        "given up long ago": {"gave_up_at": old, "due_at": None},
        "waiting long": {"due_at": now},
    }
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(
            insert(OutboxMessage),
            [
                {
                    "message_id": name,
                    "kind": "test",
                    "body": "{}",
                    "created_at": old,
                    "attempts": 1,
                    "delivered_at": None,
                    "gave_up_at": None,
                    **values,
                }
                for name, values in rows.items()
            ],
        )

    async def left_after_purge(settings: Settings) -> set[str]:
        async with connect(database.url) as engine, AsyncSession(engine) as session:
            await purge_outbox(session, settings)
        return {row.message_id for row in await messages(database.url)}

    delivering = webhook_settings(database, "http://127.0.0.1:9/hooks")
    assert await left_after_purge(delivering) == {
        "delivered recently",
        "given up long ago",
        "waiting long",
    }
    # With no URL, nobody will ever deliver what waits: it goes once it is as old.
    assert await left_after_purge(make_settings(database.url)) == {
        "delivered recently",
        "given up long ago",
    }


def test_the_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"id":"1","type":"booking.promoted"}'
    expected = hmac.new(b"k" * 32, body, hashlib.sha256).hexdigest()
    assert sign("k" * 32, body) == f"sha256={expected}"


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0), (500, 60.0)]:
        for _ in range(50):
            delay = backoff_seconds(attempts, base=2.0, cap=60.0)
            assert ceiling / 2 <= delay <= ceiling


async def test_without_a_url_no_worker_delivers(database: Database) -> None:
    async with started_app(make_settings(database.url)) as app:
        assert app_state(app).webhook_sender is None
