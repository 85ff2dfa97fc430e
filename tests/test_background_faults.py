"""Background work over many items: one item's failure is its own.

The offer sweep expires the lapsed offers of many events, webhook delivery posts a batch of
messages at once, and housekeeping runs several purges in one round. A failure for one event,
message or purge is logged and retried later; it must not stop, undo or hide the others.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.db import connect
from booking_service.models import IdempotencyKey, OutboxMessage
from booking_service.models.types import utcnow
from booking_service.repositories import outbox
from booking_service.services import housekeeping
from booking_service.services.webhooks import MESSAGE_ID_HEADER, WebhookSender
from tests.faults import Fault, failing_rows
from tests.support.api import TokenFactory, api_users, cancel, fill_event, my_bookings
from tests.support.databases import Database
from tests.support.timing import wait_past
from tests.test_webhooks import messages, webhook_settings


async def test_an_event_the_sweep_cannot_expire_does_not_hold_up_the_others(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    database: Database,
    app: FastAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner, holder, waiter = await api_users(database.url, tokens, 3)
    event_ids = [
        await fill_event(
            client,
            owner.headers,
            [holder.headers, waiter.headers],
            1,
            waitlist_mode="offer",
            offer_seconds=1,
        )
        for _ in range(3)
    ]
    for event_id in event_ids:
        assert (await cancel(client, holder.headers, event_id)).json()["outcome"] == "offered"
    offers = await my_bookings(client, waiter.headers)
    await wait_past(max(datetime.fromisoformat(offer["offer_expires_at"]) for offer in offers))
    stuck = event_ids[1]
    sweeper = app_state(app).offer_sweeper

    async with failing_rows(
        database,
        "stuck_offer",
        table="booking",
        operation="UPDATE",
        when=f"NEW.event_id = {stuck} AND NEW.status = 'expired'",
        fault=Fault.UNFORESEEN,
    ):
        assert await sweeper.sweep() == 2, "the other events' offers expire all the same"
    assert f"event {stuck}" in caplog.text
    left = await my_bookings(client, waiter.headers)
    assert [(item["eventId"], item["status"]) for item in left] == [(stuck, "offered")]
    assert await sweeper.sweep() == 1, "the next sweep expires it once it can"
    await check_invariants(database.url, event_ids)


async def test_an_unexpected_error_posting_one_message_fails_that_message_alone(
    client: httpx.AsyncClient, app: FastAPI, database: Database
) -> None:
    async with app_state(app).session_factory() as session, session.begin():
        ids = await outbox.enqueue_many(
            session, [("test.message", {"n": n, "at": utcnow()}) for n in range(3)]
        )
    broken = ids[1]

    def receive(request: httpx.Request) -> httpx.Response:
        if request.headers[MESSAGE_ID_HEADER] == broken:
            raise ValueError("a response no HTTP client expects")
        return httpx.Response(204)

    settings = webhook_settings(database, "http://127.0.0.1:9/hooks")
    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as http:
        sender = WebhookSender(app_state(app).session_factory, settings, http)
        assert await sender.deliver_due() == 3

    rows = {row.message_id: row for row in await messages(database.url)}
    assert all(rows[i].delivered_at is not None for i in ids if i != broken)
    failed = rows[broken]
    assert failed.delivered_at is None
    assert failed.attempts == 1
    assert "ValueError" in failed.last_error
    assert failed.due_at is not None, "due again after its backoff"


async def test_a_purge_that_fails_does_not_keep_the_other_from_running(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    database: Database,
    app: FastAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [owner] = await api_users(database.url, tokens, 1)
    keyed = {**owner.headers, "Idempotency-Key": "an-expired-key"}
    assert (await client.post("/book", json={"eventId": 1}, headers=keyed)).status_code == 404
    long_ago = utcnow() - timedelta(days=30)
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(update(IdempotencyKey).values(expires_at=long_ago))
    async with app_state(app).session_factory() as session, session.begin():
        await outbox.enqueue_many(session, [("test.message", {"at": utcnow()})])
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(update(OutboxMessage).values(created_at=long_ago))

    async with failing_rows(
        database,
        "stuck_key",
        table="idempotency_key",
        operation="DELETE",
        when="OLD.id > 0",
        fault=Fault.UNFORESEEN,
    ):
        with caplog.at_level(logging.ERROR, logger=housekeeping.__name__):
            await housekeeping.tidy(app_state(app).session_factory, app_state(app).settings)
    assert "idempotency keys" in caplog.text
    assert await messages(database.url) == [], "old messages purged all the same"
    async with connect(database.url) as engine, engine.connect() as conn:
        assert len((await conn.execute(IdempotencyKey.__table__.select())).all()) == 1
    await housekeeping.tidy(app_state(app).session_factory, app_state(app).settings)
    async with connect(database.url) as engine, engine.connect() as conn:
        assert (await conn.execute(IdempotencyKey.__table__.select())).all() == []
