"""Transfers: a holder gives their confirmed ticket to another user, who gets a new code."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from booking_service.bench.invariants import check_invariants
from booking_service.db import connect
from booking_service.models import OutboxMessage
from tests.support.api import (
    book,
    cancel,
    create_event,
    event_status,
    fill_event,
    my_bookings,
    register_and_login,
)
from tests.support.checks import assert_unchanged
from tests.support.databases import Database

RECIPIENT_NOT_FOUND = {
    "message": "No open account has this username",
    "code": "recipient_not_found",
    "details": None,
}


@pytest.fixture
async def people(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    names = ("owner", "alice", "bob", "carol", "dave")
    return {name: await register_and_login(client, name) for name in names}


async def _transfer(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: int, to: str
) -> httpx.Response:
    return await client.post(
        "/tickets/transfer", json={"eventId": event_id, "toUsername": to}, headers=headers
    )


async def _actions(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get("/me/history", headers=headers)
    return [entry["action"] for entry in reversed(response.json()["items"])]


async def _messages(url: str, kind: str) -> list[dict[str, Any]]:
    async with connect(url) as engine, engine.connect() as conn:
        rows = await conn.execute(select(OutboxMessage.body).where(OutboxMessage.kind == kind))
        return [json.loads(body) for body in rows.scalars()]


async def test_a_ticket_moves_to_a_friend_with_a_new_code(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    owner, alice, bob = people["owner"], people["alice"], people["bob"]
    event_id = await create_event(client, owner, 2)
    assert (await book(client, alice, event_id)).status_code == 201
    [alices] = await my_bookings(client, alice)
    before = await event_status(client, owner, event_id)

    moved = await _transfer(client, alice, event_id, "BOB")  # names are case-insensitive
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["message"], body["eventId"], body["toUsername"], body["quantity"]) == (
        "Ticket transferred",
        event_id,
        "bob",
        1,
    )
    assert await my_bookings(client, alice) == []
    [bobs] = await my_bookings(client, bob)
    assert (bobs["bookingId"], bobs["status"]) == (body["bookingId"], "confirmed")
    assert bobs["ticket_code"] != alices["ticket_code"]
    assert await event_status(client, owner, event_id) == before

    # The old code stopped working with its booking; the new one lets Bob in.
    old = await client.post(
        f"/events/{event_id}/check-in", json={"code": alices["ticket_code"]}, headers=owner
    )
    assert (old.status_code, old.json()["code"]) == (404, "ticket_not_found")
    new = await client.post(
        f"/events/{event_id}/check-in", json={"code": bobs["ticket_code"]}, headers=owner
    )
    assert (new.status_code, new.json()["username"]) == (200, "bob")

    assert await _actions(client, alice) == ["booked", "transferred"]
    assert await _actions(client, bob) == ["received", "checked_in"]
    [message] = await _messages(database.url, "ticket.transferred")
    assert message["data"] == {
        "booking_id": body["bookingId"],
        "event_id": event_id,
        "user_id": body["toUserId"],
        "from_booking_id": alices["bookingId"],
        "from_user_id": message["data"]["from_user_id"],
        "quantity": 1,
        "transferred_at": body["transferred_at"],
    }
    await check_invariants(database.url, [event_id])


async def test_every_refusal_changes_nothing(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    owner, alice, bob, carol, dave = (people[n] for n in ("owner", "alice", "bob", "carol", "dave"))
    # Alice holds the one ticket, Bob waits; Carol holds nothing.
    event_id = await fill_event(client, owner, [alice, bob], 1)
    closed = await register_and_login(client, "gone")
    close = await client.request("DELETE", "/me", json={"password": "secret-pw-1"}, headers=closed)
    assert close.status_code == 204, close.text
    cases: list[tuple[dict[str, str], int, str, int, str]] = [
        (carol, event_id, "dave", 404, "booking_not_found"),
        (alice, 987654, "dave", 404, "event_not_found"),
        (alice, event_id, "nobody", 404, "recipient_not_found"),
        (alice, event_id, "gone", 404, "recipient_not_found"),
        (alice, event_id, "bob", 409, "recipient_already_booked"),  # waits
        (alice, event_id, "alice", 409, "recipient_already_booked"),  # holds it
        (bob, event_id, "dave", 409, "ticket_not_confirmed"),
    ]
    async with assert_unchanged(database.url, [event_id]):
        for giver, event, to, status, code in cases:
            response = await _transfer(client, giver, event, to)
            assert (response.status_code, response.json()["code"]) == (status, code), (to, code)
            if code == "recipient_not_found":
                assert response.json() == RECIPIENT_NOT_FOUND
        invalid = await _transfer(client, alice, event_id, "no spaces")
        assert invalid.status_code == 422

    # Checked in: no longer moves.
    [alices] = await my_bookings(client, alice)
    checked = await client.post(
        f"/events/{event_id}/check-in", json={"code": alices["ticket_code"]}, headers=owner
    )
    assert checked.status_code == 200
    refused = await _transfer(client, alice, event_id, "dave")
    assert (refused.status_code, refused.json()["code"]) == (409, "checked_in")

    # Turned off by the owner.
    other = await fill_event(client, owner, [dave], 1, transfers_allowed=False)
    refused = await _transfer(client, dave, other, "carol")
    assert (refused.status_code, refused.json()["code"]) == (403, "transfers_disabled")
    await check_invariants(database.url, [event_id, other])


async def test_an_offer_does_not_move(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    owner, alice, bob = people["owner"], people["alice"], people["bob"]
    event_id = await fill_event(client, owner, [alice, bob], 1, waitlist_mode="offer")
    await cancel(client, alice, event_id)
    [offer] = await my_bookings(client, bob)
    assert offer["status"] == "offered"
    refused = await _transfer(client, bob, event_id, "carol")
    assert (refused.status_code, refused.json()["code"]) == (409, "ticket_not_confirmed")
    await check_invariants(database.url, [event_id])


async def test_one_ticket_sent_to_two_friends_at_once_reaches_one(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    owner, alice = people["owner"], people["alice"]
    event_id = await create_event(client, owner, 1)
    await book(client, alice, event_id)
    answers = await asyncio.gather(
        *(_transfer(client, alice, event_id, name) for name in ("bob", "carol", "dave") * 2)
    )
    assert Counter(a.status_code for a in answers) == {200: 1, 404: 5}
    [winner] = [a.json()["toUsername"] for a in answers if a.status_code == 200]
    assert [b["status"] for b in await my_bookings(client, people[winner])] == ["confirmed"]
    assert (await event_status(client, owner, event_id))["total_ticket_booked"] == 1
    await check_invariants(database.url, [event_id])
