"""Idempotency-Key on POST /initialize, /book and /cancel: one effect per key, the first answer
for every retry, and the key's rules (same user, same request, still running, expired)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import event, func, select, update

from booking_service.api.idempotent import held_key
from booking_service.app_state import app_state
from booking_service.db import connect
from booking_service.errors import IdempotencyKeyInUse, ServiceBusy
from booking_service.models import Booking, Event, IdempotencyKey
from booking_service.models.types import utcnow
from booking_service.schemas.bookings import BookingRequest
from booking_service.services.booking_rules import BookOrCancel, BookResult, RequestKind
from booking_service.services.idempotency import (
    HeldKey,
    IdempotencyService,
    key_digest,
    request_digest,
)
from tests.faults import Fault, failing_rows
from tests.support.api import (
    REPLAYED,
    ApiUser,
    TokenFactory,
    api_users,
    assert_one_answer,
    create_event,
)
from tests.support.apps import http_client, started_app
from tests.support.databases import Database
from tests.support.settings import make_settings
from tests.support.timing import eventually

KEY = "3f1c8a52-6b0e-4a7d-9f0c-2d9e1b7a5c44"


def keyed(headers: dict[str, str], key: str | bytes = KEY) -> dict[str, Any]:
    return {**headers, "Idempotency-Key": key}


async def count(url: str, table: Any) -> int:
    async with connect(url) as engine, engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
async def users(
    client: httpx.AsyncClient, database: Database, tokens: TokenFactory
) -> list[ApiUser]:
    # Depends on `client`, which wipes the tables after the test.
    return await api_users(database.url, tokens, 4)


async def test_a_retried_booking_books_once_and_gets_the_first_answer(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, alice, bob = (u.headers for u in users[:3])
    event_id = await create_event(client, owner, tickets=1)

    first = await client.post("/book", json={"eventId": event_id}, headers=keyed(alice))
    again = await client.post("/book", json={"eventId": event_id}, headers=keyed(alice))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == "true"
    assert again.headers["content-type"] == "application/json"

    # A waitlisted answer (202, with its position) is replayed the same way.
    line = await client.post("/book", json={"eventId": event_id}, headers=keyed(bob, "bob-1"))
    line_again = await client.post("/book", json={"eventId": event_id}, headers=keyed(bob, "bob-1"))
    assert line.status_code == line_again.status_code == 202
    assert line_again.content == line.content
    assert line.json()["position"] == 1
    assert await count(database.url, Booking) == 2


async def test_initialize_and_cancel_take_effect_once(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, alice, bob = (u.headers for u in users[:3])
    body = {"name": "Gig", "tickets": 1}
    created = [await client.post("/initialize", json=body, headers=keyed(owner)) for _ in range(3)]
    assert [r.status_code for r in created] == [201, 201, 201]
    assert len({r.content for r in created}) == 1
    assert await count(database.url, Event) == 1
    event_id = created[0].json()["eventId"]

    await client.post("/book", json={"eventId": event_id}, headers=alice)
    await client.post("/book", json={"eventId": event_id}, headers=bob)
    cancels = [
        await client.post("/cancel", json={"eventId": event_id}, headers=keyed(alice, "c1"))
        for _ in range(3)
    ]
    assert [r.status_code for r in cancels] == [200, 200, 200]
    assert cancels[0].json()["outcome"] == "reassigned"
    assert cancels[1].content == cancels[2].content == cancels[0].content
    assert [REPLAYED in r.headers for r in cancels] == [False, True, True]
    # One cancellation: Bob holds the ticket, and Alice holds nothing to cancel.
    mine = (await client.get("/me/bookings", headers=bob)).json()["items"]
    assert mine[0]["status"] == "confirmed"
    assert (
        await client.post("/cancel", json={"eventId": event_id}, headers=alice)
    ).status_code == 404


async def test_a_refusal_is_stored_and_replayed_even_once_the_request_could_succeed(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, alice = users[0].headers, users[1].headers
    event_id = await create_event(client, owner, tickets=5)
    await client.post("/book", json={"eventId": event_id}, headers=alice)

    refused = await client.post("/book", json={"eventId": event_id}, headers=keyed(alice))
    assert refused.status_code == 409
    assert refused.json()["code"] == "already_booked"
    await client.post("/cancel", json={"eventId": event_id}, headers=alice)
    # The key's request was answered "already booked": its retry is too, and books nothing.
    retried = await client.post("/book", json={"eventId": event_id}, headers=keyed(alice))
    assert retried.status_code == 409
    assert retried.content == refused.content
    assert retried.headers[REPLAYED] == "true"
    mine = (await client.get("/me/bookings", headers=alice)).json()["items"]
    assert mine == []

    missing = [
        await client.post("/book", json={"eventId": 999_999}, headers=keyed(alice, "k404"))
        for _ in range(2)
    ]
    assert [r.status_code for r in missing] == [404, 404]
    assert missing[1].headers[REPLAYED] == "true"


async def test_one_key_for_another_request_is_422(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, alice = users[0].headers, users[1].headers
    first, second = await create_event(client, owner, 5), await create_event(client, owner, 5)
    assert (
        await client.post("/book", json={"eventId": first}, headers=keyed(alice))
    ).status_code == 201

    other_body = await client.post("/book", json={"eventId": second}, headers=keyed(alice))
    other_endpoint = await client.post("/cancel", json={"eventId": first}, headers=keyed(alice))
    for response in (other_body, other_endpoint):
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "idempotency_key_reused"
        assert body["details"][0]["loc"] == ["header", "Idempotency-Key"]
    # Neither took effect: Alice holds one ticket, for the first event.
    mine = (await client.get("/me/bookings", headers=alice)).json()["items"]
    assert [item["eventId"] for item in mine] == [first]
    # The same request written differently (key order, spacing, 1.0 for 1) is the same request.
    same = await client.post(
        "/book",
        content=f'{{ "eventId" : {first}.0 }}',
        headers={**keyed(alice), "Content-Type": "application/json"},
    )
    assert same.status_code == 201
    assert same.headers[REPLAYED] == "true"


async def test_keys_belong_to_their_user(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner = users[0].headers
    event_id = await create_event(client, owner, tickets=5)
    answers = [
        await client.post("/book", json={"eventId": event_id}, headers=keyed(u.headers))
        for u in users[1:]
    ]
    assert [r.status_code for r in answers] == [201] * 3
    assert len({r.json()["bookingId"] for r in answers}) == 3
    assert not any(REPLAYED in r.headers for r in answers)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256 characters"),
        pytest.param("two words", id="a space"),
        pytest.param("caf\xe9".encode("latin-1"), id="not ASCII"),
    ],
)
async def test_a_malformed_key_is_422_in_the_envelope(
    client: httpx.AsyncClient,
    database: Database,
    users: list[ApiUser],
    key: str | bytes,
) -> None:
    headers = keyed(users[0].headers, key)
    response = await client.post("/initialize", json={"name": "Gig", "tickets": 1}, headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["details"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await count(database.url, Event) == 0
    # The longest key allowed works.
    ok = await client.post(
        "/initialize",
        json={"name": "Gig", "tickets": 1},
        headers=keyed(users[0].headers, "~" * 255),
    )
    assert ok.status_code == 201


async def _claim(
    app: FastAPI, user_id: int, operation: str, body: dict[str, int], **kw: float
) -> HeldKey:
    settings = app_state(app).settings
    async with app_state(app).session_factory() as session:
        service = IdempotencyService(
            session,
            ttl_seconds=kw.get("ttl", settings.idempotency_key_ttl_seconds),
            lease_seconds=kw.get("lease", settings.idempotency_lease_seconds),
            lock_retries=0,
        )
        held = await service.hold(
            user_id=user_id,
            key_digest=key_digest(KEY),
            request_digest=request_digest(operation, body),
        )
    assert held.kept is None
    return held


async def test_a_request_still_running_is_409_and_a_dead_one_is_taken_over(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    users: list[ApiUser],
) -> None:
    owner, alice = users[0].headers, users[1].headers
    event_id = await create_event(client, owner, tickets=5)
    # Another request holds the key and has not answered yet.
    await _claim(app, users[1].id, "book_ticket", {"event_id": event_id})
    busy = await client.post("/book", json={"eventId": event_id}, headers=keyed(alice))
    assert busy.status_code == 409
    assert busy.json()["code"] == "idempotency_key_in_use"
    assert busy.headers["retry-after"] == "1"

    # Its worker died: once the lease is over, a retry takes the key and books, once.
    async with connect(database.url) as engine, engine.begin() as conn:
        past = utcnow() - timedelta(seconds=1)
        await conn.execute(update(IdempotencyKey).values(locked_until=past))
    taken = await client.post("/book", json={"eventId": event_id}, headers=keyed(alice))
    assert taken.status_code == 201, taken.text
    again = await client.post("/book", json={"eventId": event_id}, headers=keyed(alice))
    assert again.content == taken.content
    assert again.headers[REPLAYED] == "true"
    mine = (await client.get("/me/bookings", headers=alice)).json()["items"]
    assert len(mine) == 1


async def test_a_request_that_lost_its_key_undoes_its_effect(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    users: list[ApiUser],
) -> None:
    owner = users[0].headers
    event_id = await create_event(client, owner, tickets=5)
    body = {"event_id": event_id}
    slow = await _claim(app, users[1].id, "book_ticket", body, lease=0)
    # Its lease ran out while it ran; a retry took the key over.
    retry = await _claim(app, users[1].id, "book_ticket", body)
    assert retry.attempt == slow.attempt + 1

    coalescer = app_state(app).coalescer
    booking = BookOrCancel(RequestKind.BOOK, event_id, users[1].id)
    with pytest.raises(IdempotencyKeyInUse):
        await coalescer.serve(booking, slow)
    assert await count(database.url, Booking) == 0, "the slow request's booking was rolled back"
    result = await coalescer.serve(booking, retry)
    assert isinstance(result, BookResult)
    assert result.booking_id > 0
    assert await count(database.url, Booking) == 1


async def test_a_failure_that_is_not_a_refusal_releases_the_key(
    client: httpx.AsyncClient, app: FastAPI, database: Database, users: list[ApiUser]
) -> None:
    request = Request({"type": "http", "app": app, "headers": [], "method": "POST"})
    body = BookingRequest.model_validate({"eventId": 1})
    held = False

    async def busy_effect() -> None:
        nonlocal held
        async with held_key(
            request, KEY, user_id=users[0].id, operation="book_ticket", body=body
        ) as key:
            held = key is not None and await count(database.url, IdempotencyKey) == 1
            raise ServiceBusy()

    with pytest.raises(ServiceBusy):
        await busy_effect()
    assert held, "the key was held while the effect ran"
    assert await count(database.url, IdempotencyKey) == 0, "a retry runs the request afresh"


async def test_a_request_refused_on_validation_leaves_the_key_free(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner = keyed(users[0].headers)
    # Within the schema's bound, over the server's MAX_TICKETS_PER_EVENT: refused by the service.
    over = await client.post(
        "/initialize", json={"name": "Gig", "tickets": 2_000_000}, headers=owner
    )
    assert over.status_code == 422
    fixed = await client.post("/initialize", json={"name": "Gig", "tickets": 20}, headers=owner)
    assert fixed.status_code == 201, "the corrected request is a new one, not a reuse"
    assert REPLAYED not in fixed.headers


async def test_an_expired_key_is_forgotten_and_purged(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    users: list[ApiUser],
) -> None:
    owner, alice = users[0].headers, users[1].headers
    first, second = await create_event(client, owner, 5), await create_event(client, owner, 5)
    # A key used a day ago for event `first`, whose time is up.
    await _claim(app, users[1].id, "book_ticket", {"event_id": first}, ttl=0)
    reused = await client.post("/book", json={"eventId": second}, headers=keyed(alice))
    assert reused.status_code == 201, "an expired key may mean a new request"

    await _claim(app, users[2].id, "book_ticket", {"event_id": first}, ttl=0)
    assert await count(database.url, IdempotencyKey) == 2
    async with app_state(app).session_factory() as session:
        service = IdempotencyService(session, ttl_seconds=3600, lease_seconds=60, lock_retries=0)
        assert await service.purge_expired() == 1
    assert await count(database.url, IdempotencyKey) == 1, "the live key stays"


async def test_every_worker_purges_expired_keys_in_the_background(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    settings = make_settings(database.url, housekeeping_interval_seconds=0.05)
    async with started_app(settings) as app:
        await _claim(app, users[0].id, "book_ticket", {"event_id": 1}, ttl=0)
        await _claim(app, users[1].id, "book_ticket", {"event_id": 1})

        async def purged() -> bool:
            return await count(database.url, IdempotencyKey) == 1

        await eventually(purged, what="expired key purged")


@pytest.mark.parametrize("operation", ["initialize", "book", "cancel"])
async def test_twenty_at_once_with_one_key_take_effect_once(
    client: httpx.AsyncClient,
    database: Database,
    users: list[ApiUser],
    operation: str,
) -> None:
    owner, alice, bob = (u.headers for u in users[:3])
    event_id = await create_event(client, owner, tickets=1)
    if operation == "cancel":
        await client.post("/book", json={"eventId": event_id}, headers=alice)
        await client.post("/book", json={"eventId": event_id}, headers=bob)
    path, body = {
        "initialize": ("/initialize", {"name": "Rush", "tickets": 3}),
        "book": ("/book", {"eventId": event_id}),
        "cancel": ("/cancel", {"eventId": event_id}),
    }[operation]

    answers = await asyncio.gather(
        *(client.post(path, json=body, headers=keyed(alice)) for _ in range(20))
    )

    first = assert_one_answer(answers)
    # Exactly one effect.
    if operation == "initialize":
        assert await count(database.url, Event) == 2
    elif operation == "book":
        mine = (await client.get("/me/bookings", headers=alice)).json()["items"]
        assert len(mine) == 1
    else:
        assert first.json()["outcome"] == "reassigned"
        mine = (await client.get("/me/bookings", headers=bob)).json()["items"]
        assert mine[0]["status"] == "confirmed"
        assert (await client.get("/me/bookings", headers=alice)).json()["items"] == []
    # A latecomer gets the same answer.
    late = await client.post(path, json=body, headers=keyed(alice))
    assert (late.status_code, late.content) == (first.status_code, first.content)


async def test_requests_without_a_key_never_touch_the_keys(
    client: httpx.AsyncClient,
    app: FastAPI,
    database: Database,
    users: list[ApiUser],
) -> None:
    owner, alice = users[0].headers, users[1].headers
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = app_state(app).engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        event_id = await create_event(client, owner, tickets=1)
        await client.post("/book", json={"eventId": event_id}, headers=alice)
        await client.post("/cancel", json={"eventId": event_id}, headers=alice)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements, "the listener saw the requests' statements"
    assert not [s for s in statements if "idempotency_key" in s]


async def test_cors_lets_browsers_send_the_key_and_read_the_replay_header(
    database: Database,
) -> None:
    origin = "https://app.example.com"
    settings = make_settings(database.url, cors_allow_origins=origin)
    async with started_app(settings) as app, http_client(app) as http:
        preflight = await http.options(
            "/book",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        simple = await http.get("/openapi.json", headers={"Origin": origin})
        assert "idempotent-replayed" in simple.headers["access-control-expose-headers"].lower()


async def test_a_refusal_that_could_not_be_stored_leaves_the_key_free(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    # The refusal (404: no such event) is to be stored with the key, but the database fails
    # that write until its retries run out: the client is told 503, and nothing was done.
    alice = keyed(users[1].headers)
    async with failing_rows(
        database,
        "unstorable_answer",
        table="idempotency_key",
        operation="UPDATE",
        when="NEW.status_code IS NOT NULL",
        fault=Fault.LOCK_TIMEOUT,
    ):
        busy = await client.post("/book", json={"eventId": 999}, headers=alice)
    assert (busy.status_code, busy.json()["code"]) == (503, "busy")
    # So a retry runs the request afresh, at once, rather than waiting out the lease (409).
    retried = await client.post("/book", json={"eventId": 999}, headers=alice)
    assert (retried.status_code, retried.json()["code"]) == (404, "event_not_found")
    assert REPLAYED not in retried.headers
    replayed = await client.post("/book", json={"eventId": 999}, headers=alice)
    assert replayed.status_code == 404
    assert replayed.headers[REPLAYED] == "true"
