"""Parties in offer mode, under organizer changes, account closing, transfers and check-in:
freed tickets always follow the line rule, whole parties in order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from booking_service.bench.invariants import check_invariants
from tests.support.api import (
    ApiUser,
    TokenFactory,
    api_users,
    book,
    cancel,
    create_event,
    event_status,
    my_bookings,
)
from tests.support.databases import Database


@pytest.fixture
async def users(database: Database, tokens: TokenFactory) -> list[ApiUser]:
    return await api_users(database.url, tokens, 5, prefix="group")


async def mine(client: httpx.AsyncClient, user: ApiUser, event_id: int) -> dict[str, Any]:
    [claim] = [b for b in await my_bookings(client, user.headers) if b["eventId"] == event_id]
    return claim


def tickets_and_line(status: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(available, booked, offered, entries in line, first_in_line_needs)."""
    return (
        status["available_tickets"],
        status["total_ticket_booked"],
        status["offered_tickets"],
        status["waiting_list_count"],
        status["first_in_line_needs"],
    )


async def test_a_party_is_offered_its_tickets_together_and_accepts_them_all(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben, cat = users[:4]
    event_id = await create_event(client, owner.headers, 3, max_per_user=3, waitlist_mode="offer")
    assert (await book(client, ann.headers, event_id, 3)).status_code == 201
    assert (await book(client, ben.headers, event_id, 2)).status_code == 202
    assert (await book(client, cat.headers, event_id, 1)).status_code == 202
    offered = await cancel(client, ann.headers, event_id, 2)
    assert (offered.json()["outcome"], offered.json()["quantity"]) == ("offered", 1)
    offer = await mine(client, ben, event_id)
    assert (offer["status"], offer["quantity"]) == ("offered", 2)
    assert offer["offer_expires_at"] is not None
    assert tickets_and_line(await event_status(client, owner.headers, event_id)) == (0, 1, 2, 1, 1)
    # An offer is all or nothing: part of it cannot be given back.
    part = await cancel(client, ben.headers, event_id, 1)
    assert (part.status_code, part.json()["code"]) == (409, "offer_all_or_nothing")
    accepted = await client.post("/offers/accept", json={"eventId": event_id}, headers=ben.headers)
    assert (accepted.status_code, accepted.json()["quantity"]) == (200, 2)
    assert tickets_and_line(await event_status(client, owner.headers, event_id)) == (0, 3, 0, 1, 1)
    await check_invariants(database.url, [event_id])


async def test_a_declined_party_offer_passes_on_under_the_line_rule(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben, cat, dan = users
    event_id = await create_event(client, owner.headers, 3, max_per_user=3, waitlist_mode="offer")
    assert (await book(client, ann.headers, event_id, 3)).status_code == 201
    assert (await book(client, ben.headers, event_id, 3)).status_code == 202
    assert (await book(client, cat.headers, event_id, 1)).status_code == 202
    assert (await book(client, dan.headers, event_id, 2)).status_code == 202
    assert (await cancel(client, ann.headers, event_id)).json()["outcome"] == "offered"
    declined = await client.post("/offers/decline", json={"eventId": event_id}, headers=ben.headers)
    assert declined.status_code == 200, declined.text
    # Ben's three go on whole: Cat's one and Dan's two, each with an offer.
    assert [(await mine(client, u, event_id))["status"] for u in (cat, dan)] == ["offered"] * 2
    assert tickets_and_line(await event_status(client, owner.headers, event_id)) == (0, 0, 3, 0, 0)
    await check_invariants(database.url, [event_id])


async def test_capacity_may_not_shrink_below_the_largest_party_in_line(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben = users[:3]
    event_id = await create_event(client, owner.headers, 5, max_per_user=5)
    assert (await book(client, ann.headers, event_id, 2)).status_code == 201
    assert (await book(client, ben.headers, event_id, 4)).status_code == 202
    shrink = await client.patch(f"/events/{event_id}", json={"tickets": 3}, headers=owner.headers)
    assert (shrink.status_code, shrink.json()["code"]) == (409, "capacity_below_party")
    assert "below 4" in shrink.json()["message"]
    below_held = await client.patch(
        f"/events/{event_id}", json={"tickets": 1}, headers=owner.headers
    )
    assert (below_held.status_code, below_held.json()["code"]) == (409, "capacity_below_held")
    # The party at the head while capacity shrinks: it still waits, for fewer free tickets.
    fits = await client.patch(f"/events/{event_id}", json={"tickets": 4}, headers=owner.headers)
    assert fits.status_code == 200, fits.text
    assert (fits.json()["available_tickets"], fits.json()["first_in_line_needs"]) == (2, 2)
    # More tickets: Ben's four are booked once there are four free.
    grown = await client.patch(f"/events/{event_id}", json={"tickets": 6}, headers=owner.headers)
    assert (grown.json()["available_tickets"], grown.json()["waiting_list_count"]) == (0, 0)
    assert (await mine(client, ben, event_id))["quantity"] == 4
    await check_invariants(database.url, [event_id])


async def test_cancelling_an_event_releases_tickets_and_entries(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben, cat = users[:4]
    event_id = await create_event(client, owner.headers, 4, max_per_user=4)
    assert (await book(client, ann.headers, event_id, 3)).status_code == 201
    assert (await book(client, ben.headers, event_id, 2)).status_code == 202
    assert (await book(client, cat.headers, event_id, 4)).status_code == 202
    closed = await client.post(f"/events/{event_id}/close", headers=owner.headers)
    assert closed.status_code == 200
    assert (await book(client, users[4].headers, event_id, 1)).status_code == 409
    # Closed, the line carries on: Ann's two freed tickets go to Ben.
    assert (await cancel(client, ann.headers, event_id, 2)).json()["outcome"] == "reassigned"
    released = await client.post(f"/events/{event_id}/cancel", headers=owner.headers)
    assert released.json() | {"message": None} == {
        "message": None,
        "eventId": event_id,
        "released_tickets": 3,
        "released_offers": 0,
        "released_places": 1,
    }
    await check_invariants(database.url, [event_id])


async def test_closing_an_account_hands_its_party_tickets_on(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner = users[0]
    name, password = "leaver", "secret-pw-1"
    assert (
        await client.post("/register", json={"username": name, "password": password})
    ).status_code == 201
    token = (await client.post("/login", json={"username": name, "password": password})).json()
    leaver = {"Authorization": f"Bearer {token['token']}"}
    event_id = await create_event(client, owner.headers, 3, max_per_user=3)
    assert (
        await client.post("/book", json={"eventId": event_id, "quantity": 3}, headers=leaver)
    ).status_code == 201
    assert (await book(client, users[1].headers, event_id, 3)).status_code == 202
    closed = await client.request("DELETE", "/me", json={"password": password}, headers=leaver)
    assert closed.status_code == 204, closed.text
    assert (await mine(client, users[1], event_id))["status"] == "confirmed"
    await check_invariants(database.url, [event_id])


async def test_a_transfer_moves_the_whole_party_and_check_in_lets_it_all_in(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner = users[0]
    sender = {"Authorization": users[1].headers["Authorization"]}
    username = "friend"
    assert (
        await client.post("/register", json={"username": username, "password": "secret-pw-1"})
    ).status_code == 201
    login = await client.post("/login", json={"username": username, "password": "secret-pw-1"})
    friend = {"Authorization": f"Bearer {login.json()['token']}"}
    event_id = await create_event(client, owner.headers, 5, max_per_user=3)
    assert (await book(client, sender, event_id, 3)).status_code == 201
    moved = await client.post(
        "/tickets/transfer", json={"eventId": event_id, "toUsername": username}, headers=sender
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["quantity"] == 3
    [ticket] = await my_bookings(client, friend)
    assert ticket["quantity"] == 3
    checked = await client.post(
        f"/events/{event_id}/check-in", json={"code": ticket["ticket_code"]}, headers=owner.headers
    )
    assert (checked.status_code, checked.json()["quantity"]) == (200, 3)
    assert (await event_status(client, owner.headers, event_id))["checked_in_tickets"] == 3
    await check_invariants(database.url, [event_id])
