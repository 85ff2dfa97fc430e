"""Organizer controls: only the owner changes, closes or cancels an event and reads its
bookings; every change keeps the booking rules."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from tests.support.api import (
    TokenFactory,
    book,
    cancel,
    create_event,
    event_status,
    fill_event,
    my_bookings,
    register_and_login,
)
from tests.support.databases import Database


async def _statuses(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    return [item["status"] for item in await my_bookings(client, headers)]


async def _event(client: httpx.AsyncClient, event_id: int, headers: dict[str, str]) -> Any:
    response = await client.get(f"/events/{event_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def people(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    names = ("owner", "alice", "bob", "carol", "dave", "erin")
    return {name: await register_and_login(client, name) for name in names}


OWNER_ONLY = [
    ("PATCH", "/events/{id}", {"tickets": 5}),
    ("POST", "/events/{id}/close", None),
    ("POST", "/events/{id}/cancel", None),
    ("GET", "/events/{id}/bookings", None),
    ("GET", "/events/{id}/history", None),
]


async def test_only_the_owner_may_change_or_look(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]]
) -> None:
    event_id = await create_event(client, people["owner"], tickets=3)
    for method, path, body in OWNER_ONLY:
        url = path.format(id=event_id)
        refused = await client.request(method, url, json=body, headers=people["alice"])
        assert refused.status_code == 403, (method, path)
        assert refused.json()["code"] == "not_event_owner"
        unknown = await client.request(
            method, path.format(id=987654), json=body, headers=people["owner"]
        )
        assert (unknown.status_code, unknown.json()["code"]) == (404, "event_not_found")
    # Nothing the stranger tried took effect.
    event = await _event(client, event_id, people["owner"])
    assert (event["capacity"], event["state"]) == (3, "open")


async def test_more_tickets_go_to_the_line_in_line_order(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    bookers = [people[name] for name in ("alice", "bob", "carol", "dave")]
    event_id = await fill_event(client, people["owner"], bookers, 1)  # 201, 202, 202, 202

    grown = await client.patch(f"/events/{event_id}", json={"tickets": 3}, headers=people["owner"])
    assert grown.status_code == 200, grown.text
    body = grown.json()
    assert (body["capacity"], body["total_ticket_booked"], body["available_tickets"]) == (3, 3, 0)
    assert body["waiting_list_count"] == 1
    assert await _statuses(client, people["bob"]) == ["confirmed"]
    assert await _statuses(client, people["carol"]) == ["confirmed"]
    assert await _statuses(client, people["dave"]) == ["waitlisted"]

    # With nobody left in line, more tickets are simply free.
    await cancel(client, people["dave"], event_id)
    grown = await client.patch(f"/events/{event_id}", json={"tickets": 5}, headers=people["owner"])
    assert grown.json()["available_tickets"] == 2
    await check_invariants(database.url, [event_id])


async def test_more_tickets_in_offer_mode_make_offers(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    bookers = [people[name] for name in ("alice", "bob", "carol")]
    event_id = await fill_event(client, people["owner"], bookers, 1, waitlist_mode="offer")
    grown = await client.patch(f"/events/{event_id}", json={"tickets": 2}, headers=people["owner"])
    assert grown.json()["offered_tickets"] == 1
    assert await _statuses(client, people["bob"]) == ["offered"]
    assert await _statuses(client, people["carol"]) == ["waitlisted"]

    # Mode and tickets in one request: the increase already follows the new mode.
    both = await client.patch(
        f"/events/{event_id}",
        json={"tickets": 3, "waitlist_mode": "instant"},
        headers=people["owner"],
    )
    assert both.status_code == 200, both.text
    assert await _statuses(client, people["carol"]) == ["confirmed"]
    await check_invariants(database.url, [event_id])


async def test_fewer_tickets_never_below_those_confirmed_or_offered(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    owner = people["owner"]
    bookers = [people[name] for name in ("alice", "bob", "carol")]
    event_id = await fill_event(client, owner, bookers, 2, waitlist_mode="offer")
    await cancel(client, people["alice"], event_id)  # -> Carol
    grown = await client.patch(f"/events/{event_id}", json={"tickets": 5}, headers=owner)
    assert grown.json()["available_tickets"] == 3  # Bob confirmed, Carol offered

    refused = await client.patch(f"/events/{event_id}", json={"tickets": 1}, headers=owner)
    assert refused.status_code == 409
    assert refused.json()["code"] == "capacity_below_held"
    assert "2" in refused.json()["message"]
    shrunk = await client.patch(f"/events/{event_id}", json={"tickets": 2}, headers=owner)
    assert shrunk.status_code == 200, shrunk.text
    body = shrunk.json()
    assert (body["capacity"], body["available_tickets"], body["offered_tickets"]) == (2, 0, 1)

    # An empty change, or nulls, leave everything as it is; bad values are 422.
    for unchanged in ({}, {"tickets": None, "waitlist_mode": None, "offer_seconds": None}):
        same = await client.patch(f"/events/{event_id}", json=unchanged, headers=owner)
        assert same.status_code == 200
        assert same.json() == body
    for bad in ({"tickets": 0}, {"tickets": 1_000_001}, {"offer_seconds": 0}, {"name": "x"}):
        response = await client.patch(f"/events/{event_id}", json=bad, headers=owner)
        assert response.status_code == 422, bad
    await check_invariants(database.url, [event_id])


async def test_a_closed_event_takes_no_newcomers_but_its_claims_carry_on(
    client: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    database: Database,
    tokens: TokenFactory,
) -> None:
    owner = people["owner"]
    event_id = await fill_event(client, owner, [people["alice"], people["bob"]], 1)  # 201, 202

    closed = await client.post(f"/events/{event_id}/close", headers=owner)
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed"
    refused = await book(client, people["carol"], event_id)
    assert (refused.status_code, refused.json()["code"]) == (409, "event_closed")
    # A rush on a closed event (the grouped path) is refused just the same.
    rush = await create_users(database.url, 20, prefix="rush")
    answers = [
        (await book(client, tokens.headers(user), event_id)).status_code for user in rush[:2]
    ]
    answers += await _book_all(client, tokens, rush[2:], event_id)
    assert set(answers) == {409}

    # Alice gives her ticket back: Bob, already in line, still gets it.
    cancelled = await cancel(client, people["alice"], event_id)
    assert cancelled.json()["outcome"] == "reassigned"
    cancelled = await cancel(client, people["bob"], event_id)
    assert cancelled.json()["outcome"] == "released"
    status = await event_status(client, owner, event_id)
    assert (status["available_tickets"], status["state"]) == (1, "closed")
    assert (await book(client, people["carol"], event_id)).status_code == 409  # free, but closed

    again = await client.post(f"/events/{event_id}/close", headers=owner)
    assert again.status_code == 200
    await check_invariants(database.url, [event_id])


async def _book_all(
    client: httpx.AsyncClient, tokens: TokenFactory, users: list[int], event_id: int
) -> list[int]:
    responses = await asyncio.gather(
        *(book(client, tokens.headers(user), event_id) for user in users)
    )
    return [response.status_code for response in responses]


async def test_cancelling_an_event_releases_everything_on_record(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    owner = people["owner"]
    bookers = [people[name] for name in ("alice", "bob", "carol", "dave")]
    event_id = await fill_event(client, owner, bookers, 2, waitlist_mode="offer")
    await cancel(client, people["alice"], event_id)
    # Now: Bob confirmed, Carol offered, Dave in line.
    cancelled = await client.post(f"/events/{event_id}/cancel", headers=owner)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "message": "Event cancelled",
        "eventId": event_id,
        "released_tickets": 1,
        "released_offers": 1,
        "released_places": 1,
    }
    for name in ("bob", "carol", "dave"):
        assert await _statuses(client, people[name]) == []
    history = (await client.get(f"/events/{event_id}/history", headers=owner)).json()
    released = {e["username"]: e["action"] for e in history["items"][:3]}
    assert released == {
        "bob": "event_cancelled",
        "carol": "event_cancelled",
        "dave": "event_cancelled",
    }
    event = await _event(client, event_id, owner)
    assert (event["state"], event["total_ticket_booked"], event["waiting_list_count"]) == (
        "cancelled",
        0,
        0,
    )
    assert event["offered_tickets"] == 0

    refused = await book(client, people["erin"], event_id)
    assert (refused.status_code, refused.json()["code"]) == (409, "event_cancelled")
    for method, path, body in OWNER_ONLY[:2]:
        response = await client.request(method, path.format(id=event_id), json=body, headers=owner)
        assert (response.status_code, response.json()["code"]) == (409, "event_cancelled")
    nothing = await cancel(client, people["bob"], event_id)
    assert nothing.status_code == 404
    withdrawn = await client.post(
        "/offers/accept", json={"eventId": event_id}, headers=people["carol"]
    )
    assert (withdrawn.status_code, withdrawn.json()["code"]) == (409, "event_cancelled")
    again = await client.post(f"/events/{event_id}/cancel", headers=owner)
    assert again.json()["released_tickets"] == again.json()["released_places"] == 0
    await check_invariants(database.url, [event_id])


async def test_the_owner_sees_tickets_offers_and_the_line_page_by_page(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    owner = people["owner"]
    bookers = [people[name] for name in ("alice", "bob", "carol", "dave", "erin")]
    event_id = await fill_event(client, owner, bookers, 2, waitlist_mode="offer")
    await cancel(client, people["alice"], event_id)
    # Now: Bob confirmed, Carol offered, Dave then Erin in line.

    page = (await client.get(f"/events/{event_id}/bookings", headers=owner)).json()
    assert page["total"] == 4
    rows = [(b["username"], b["status"], b["position"]) for b in page["items"]]
    assert rows == [
        ("bob", "confirmed", None),
        ("carol", "offered", None),
        ("dave", "waitlisted", 1),
        ("erin", "waitlisted", 2),
    ]
    carol = page["items"][1]
    assert carol["offer_expires_at"] is not None
    assert carol["userId"] > 0
    assert carol["bookingId"] > 0

    second = await client.get(
        f"/events/{event_id}/bookings", params={"limit": 2, "offset": 2}, headers=owner
    )
    body = second.json()
    assert (body["total"], body["limit"], body["offset"]) == (4, 2, 2)
    assert [b["username"] for b in body["items"]] == ["dave", "erin"]
    line = await client.get(
        f"/events/{event_id}/bookings", params={"status": "waitlisted"}, headers=owner
    )
    assert [(b["username"], b["position"]) for b in line.json()["items"]] == [
        ("dave", 1),
        ("erin", 2),
    ]
    past = await client.get(f"/events/{event_id}/bookings", params={"offset": 50}, headers=owner)
    assert (past.json()["items"], past.json()["total"]) == ([], 4)
    bad = await client.get(f"/events/{event_id}/bookings", params={"status": "left"}, headers=owner)
    assert bad.status_code == 422
    await check_invariants(database.url, [event_id])
