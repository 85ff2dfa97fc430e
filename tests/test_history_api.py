"""Booking history: every change of a ticket or place in line is recorded once, with its time,
and read back by its holder (GET /me/history) or the event's owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from booking_service.bench.invariants import check_invariants
from tests.support.api import book, cancel, create_event, fill_event, register_and_login
from tests.support.databases import Database


async def _post(
    client: httpx.AsyncClient, path: str, event_id: int, headers: dict[str, str]
) -> int:
    return (await client.post(path, json={"eventId": event_id}, headers=headers)).status_code


async def _history(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: int
) -> Any:
    response = await client.get(url, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_my_history_has_every_change_once_newest_first(
    client: httpx.AsyncClient, database: Database
) -> None:
    owner = await register_and_login(client, "owner")
    alice = await register_and_login(client, "alice")
    bob = await register_and_login(client, "bob")
    gig = await create_event(client, owner, tickets=1, name="Gig")
    opera = await create_event(client, owner, tickets=1, name="Opera")

    assert (await book(client, alice, gig)).status_code == 201
    assert (await cancel(client, alice, gig)).status_code == 200
    assert (await book(client, owner, opera)).status_code == 201
    assert (await book(client, alice, opera)).status_code == 202
    assert (await book(client, bob, opera)).status_code == 202
    assert (await cancel(client, owner, opera)).status_code == 200  # Alice promoted
    assert (await cancel(client, bob, opera)).status_code == 200  # Bob leaves the line

    page = await _history(client, "/me/history", alice)
    assert page["total"] == 4
    entries = [(e["event_name"], e["action"]) for e in page["items"]]
    assert entries == [
        ("Opera", "promoted"),
        ("Opera", "waitlisted"),
        ("Gig", "cancelled"),
        ("Gig", "booked"),
    ]
    assert {e["username"] for e in page["items"]} == {"alice"}
    ids = [e["historyId"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True)
    times = [datetime.fromisoformat(e["created_at"]) for e in page["items"]]
    assert times == sorted(times, reverse=True)
    assert all(t.tzinfo is not None for t in times)

    second = await _history(client, "/me/history", alice, limit=3, offset=3)
    assert [(e["action"]) for e in second["items"]] == ["booked"]
    assert (second["total"], second["limit"], second["offset"]) == (4, 3, 3)
    bobs = await _history(client, "/me/history", bob)
    assert [e["action"] for e in bobs["items"]] == ["left", "waitlisted"]
    await check_invariants(database.url, [gig, opera])


async def test_the_owner_reads_the_whole_event_in_order(
    client: httpx.AsyncClient, database: Database
) -> None:
    owner = await register_and_login(client, "owner")
    alice = await register_and_login(client, "alice")
    bob = await register_and_login(client, "bob")
    event_id = await fill_event(client, owner, [alice, bob], 1, waitlist_mode="offer")
    await cancel(client, alice, event_id)
    await _post(client, "/offers/accept", event_id, bob)

    page = await _history(client, f"/events/{event_id}/history", owner)
    story = [(e["username"], e["action"]) for e in reversed(page["items"])]
    assert story == [
        ("alice", "booked"),
        ("bob", "waitlisted"),
        ("alice", "cancelled"),
        ("bob", "offered"),
        ("bob", "accepted"),
    ]
    assert {e["eventId"] for e in page["items"]} == {event_id}
    bookings = {e["username"]: e["bookingId"] for e in page["items"]}
    assert bookings["alice"] != bookings["bob"]
    # The holder sees the same entries of theirs.
    bobs = await _history(client, "/me/history", bob)
    assert [e["historyId"] for e in bobs["items"]] == [
        e["historyId"] for e in page["items"] if e["username"] == "bob"
    ]
    await check_invariants(database.url, [event_id])


async def test_closing_an_account_records_what_it_gave_back(
    client: httpx.AsyncClient, database: Database
) -> None:
    owner = await register_and_login(client, "owner")
    alice = await register_and_login(client, "alice")
    bob = await register_and_login(client, "bob")
    event_id = await fill_event(client, owner, [alice, bob], 1)
    closed = await client.request("DELETE", "/me", json={"password": "secret-pw-1"}, headers=alice)
    assert closed.status_code == 204
    page = await _history(client, f"/events/{event_id}/history", owner)
    story = [(e["username"], e["action"]) for e in reversed(page["items"])]
    assert story[2:] == [("alice", "cancelled"), ("bob", "promoted")]
    await check_invariants(database.url, [event_id])
