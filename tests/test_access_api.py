"""Object-level access: the token is the only identity; nobody reaches another user's bookings."""

from __future__ import annotations

import httpx

from booking_service.bench.invariants import check_invariants
from tests.support.api import create_event, register_and_login
from tests.support.databases import Database


async def test_a_user_never_sees_or_cancels_anothers_booking(
    client: httpx.AsyncClient, database: Database
) -> None:
    alice = await register_and_login(client, "alice")
    bob = await register_and_login(client, "bob")
    event_id = await create_event(client, alice, tickets=1)
    booked = await client.post("/book", json={"eventId": event_id}, headers=alice)
    assert booked.status_code == 201

    assert (await client.get("/me/bookings", headers=bob)).json() == {"items": []}
    # Bob has nothing to cancel on that event, whatever he claims about whom he is.
    cancel = await client.post("/cancel", json={"eventId": event_id}, headers=bob)
    assert cancel.status_code == 404
    assert cancel.json()["code"] == "booking_not_found"
    for impersonation in ({"userId": 1}, {"user_id": 1}, {"username": "alice"}):
        response = await client.post(
            "/cancel", json={"eventId": event_id, **impersonation}, headers=bob
        )
        assert response.status_code == 422, impersonation

    mine = (await client.get("/me/bookings", headers=alice)).json()["items"]
    assert [(b["eventId"], b["status"]) for b in mine] == [(event_id, "confirmed")]
    reports = await check_invariants(database.url, [event_id])
    assert reports[event_id].confirmed == 1


async def test_a_waiting_user_cannot_take_anothers_place(
    client: httpx.AsyncClient, database: Database
) -> None:
    alice = await register_and_login(client, "alice")
    bob = await register_and_login(client, "bob")
    carol = await register_and_login(client, "carol")
    event_id = await create_event(client, alice, tickets=1)
    assert (
        await client.post("/book", json={"eventId": event_id}, headers=alice)
    ).status_code == 201
    assert (await client.post("/book", json={"eventId": event_id}, headers=bob)).status_code == 202

    # Carol cancelling does not touch Bob's place; Alice cancelling promotes Bob, not Carol.
    assert (
        await client.post("/cancel", json={"eventId": event_id}, headers=carol)
    ).status_code == 404
    assert (
        await client.post("/cancel", json={"eventId": event_id}, headers=alice)
    ).status_code == 200
    bobs = (await client.get("/me/bookings", headers=bob)).json()["items"]
    assert [(b["eventId"], b["status"]) for b in bobs] == [(event_id, "confirmed")]
    assert (await client.get("/me/bookings", headers=carol)).json() == {"items": []}
    await check_invariants(database.url, [event_id])
