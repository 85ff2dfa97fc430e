"""Closing an account (DELETE /me): what it gives back, and that its token dies with it."""

from __future__ import annotations

import httpx

from booking_service.bench.invariants import check_invariants
from tests.support.api import create_event, register_and_login
from tests.support.databases import Database

PASSWORD = "secret-pw-1"  # register_and_login's


async def test_closing_needs_the_password(client: httpx.AsyncClient) -> None:
    alice = await register_and_login(client, "alice")
    refused = await client.request("DELETE", "/me", json={"password": "not-it"}, headers=alice)
    assert refused.status_code == 403
    assert refused.json()["code"] == "wrong_password"
    assert (await client.get("/me/bookings", headers=alice)).status_code == 200
    missing = await client.request("DELETE", "/me", headers=alice)
    assert missing.status_code == 422


async def test_closing_gives_everything_back_and_kills_the_token(
    client: httpx.AsyncClient, database: Database
) -> None:
    alice = await register_and_login(client, "alice")
    bob = await register_and_login(client, "bob")
    carol = await register_and_login(client, "carol")
    concert = await create_event(client, bob, tickets=1, name="Concert")
    opera = await create_event(client, bob, tickets=1, name="Opera")
    assert (await client.post("/book", json={"eventId": concert}, headers=alice)).status_code == 201
    assert (await client.post("/book", json={"eventId": concert}, headers=carol)).status_code == 202
    assert (await client.post("/book", json={"eventId": opera}, headers=bob)).status_code == 201
    assert (await client.post("/book", json={"eventId": opera}, headers=alice)).status_code == 202

    closed = await client.request("DELETE", "/me", json={"password": PASSWORD}, headers=alice)
    assert closed.status_code == 204, closed.text
    assert closed.content == b""

    # Alice's ticket went to Carol, first in line; Alice left the Opera's line.
    carols = (await client.get("/me/bookings", headers=carol)).json()["items"]
    assert [(b["eventId"], b["status"]) for b in carols] == [(concert, "confirmed")]
    status = (await client.get(f"/status/{opera}", headers=bob)).json()
    assert status["waiting_list_count"] == 0
    await check_invariants(database.url, [concert, opera])

    # The token, the password and a second close all stop working; the name stays taken.
    after = await client.get("/me/bookings", headers=alice)
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == "Bearer"
    again = await client.request("DELETE", "/me", json={"password": PASSWORD}, headers=alice)
    assert again.status_code == 401
    login = await client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 401
    assert login.json()["code"] == "invalid_credentials"
    retaken = await client.post("/register", json={"username": "alice", "password": PASSWORD})
    assert retaken.status_code == 409
