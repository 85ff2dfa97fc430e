"""Waiting-list offers: in `offer` mode a freed ticket is held for the first in line until a
deadline; they accept or decline, or it lapses and goes to the next in line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.db import connect
from booking_service.models import Event
from tests.support.api import (
    book,
    cancel,
    create_event,
    event_status,
    fill_event,
    my_bookings,
    register_and_login,
)
from tests.support.apps import http_client, started_app
from tests.support.databases import Database
from tests.support.timing import eventually, wait_past


async def _post(
    client: httpx.AsyncClient, path: str, event_id: int, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(path, json={"eventId": event_id}, headers=headers)


async def _actions(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    """The user's history, oldest first."""
    response = await client.get("/me/history", headers=headers)
    assert response.status_code == 200, response.text
    return [entry["action"] for entry in reversed(response.json()["items"])]


def _deadline(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["offer_expires_at"])


@pytest.fixture
async def people(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    names = ("owner", "alice", "bob", "carol", "dave")
    return {name: await register_and_login(client, name) for name in names}


async def _sold_out_with_line(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], **fields: Any
) -> int:
    """One ticket, held by Alice; Bob then Carol in line."""
    bookers = [people[name] for name in ("alice", "bob", "carol")]
    return await fill_event(client, people["owner"], bookers, 1, **fields)


async def test_instant_is_the_default_and_the_mode_is_chosen_at_creation(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]]
) -> None:
    owner = people["owner"]
    plain = await create_event(client, owner, tickets=5)
    event = (await client.get(f"/events/{plain}", headers=owner)).json()
    assert (event["waitlist_mode"], event["offer_seconds"], event["state"]) == (
        "instant",
        900,
        "open",
    )
    offering = await create_event(client, owner, tickets=5, waitlist_mode="offer", offer_seconds=60)
    event = (await client.get(f"/events/{offering}", headers=owner)).json()
    assert (event["waitlist_mode"], event["offer_seconds"], event["offered_tickets"]) == (
        "offer",
        60,
        0,
    )
    for bad in (
        {"waitlist_mode": "lottery"},
        {"offer_seconds": 0},
        {"offer_seconds": 604801},
        {"offer_seconds": "60"},
        {"offer_seconds": None},
    ):
        response = await client.post(
            "/initialize", json={"name": "Gig", "tickets": 1, **bad}, headers=owner
        )
        assert response.status_code == 422, bad
        assert response.json()["code"] == "validation_error"


async def test_a_freed_ticket_is_offered_to_the_first_in_line_who_accepts(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    event_id = await _sold_out_with_line(client, people, waitlist_mode="offer", offer_seconds=600)
    before = datetime.now(UTC)

    cancelled = await cancel(client, people["alice"], event_id)
    assert cancelled.status_code == 200
    assert cancelled.json()["outcome"] == "offered"
    assert cancelled.json()["message"] == (
        "Booking canceled, ticket offered to the next user on the waiting list"
    )

    [offer] = await my_bookings(client, people["bob"])
    assert (offer["eventId"], offer["status"], offer["position"]) == (event_id, "offered", None)
    deadline = _deadline(offer)
    assert before + timedelta(seconds=599) < deadline <= datetime.now(UTC) + timedelta(seconds=600)
    [place] = await my_bookings(client, people["carol"])
    assert (place["status"], place["position"], place["offer_expires_at"]) == (
        "waitlisted",
        1,
        None,
    )
    # The offered ticket is neither free nor booked: a newcomer joins the line behind Carol.
    assert await event_status(client, people["dave"], event_id) == {
        "event_name": "Concert",
        "available_tickets": 0,
        "total_ticket_booked": 0,
        "waiting_list_count": 1,
        "waiting_list_tickets": 1,
        "first_in_line_needs": 1,
        "offered_tickets": 1,
        "state": "open",
        "sales_start": None,
        "sales_end": None,
        "checked_in_tickets": 0,
    }
    joined = await book(client, people["dave"], event_id)
    assert (joined.status_code, joined.json()["position"]) == (202, 2)
    await check_invariants(database.url, [event_id])

    accepted = await _post(client, "/offers/accept", event_id, people["bob"])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {
        "message": "Ticket booked",
        "eventId": event_id,
        "bookingId": offer["bookingId"],
        "status": "confirmed",
        "quantity": 1,
    }
    [ticket] = await my_bookings(client, people["bob"])
    assert (ticket["status"], ticket["offer_expires_at"]) == ("confirmed", None)
    assert ticket["promoted_at"] is not None
    status = await event_status(client, people["bob"], event_id)
    assert (status["total_ticket_booked"], status["offered_tickets"]) == (1, 0)
    assert await _actions(client, people["bob"]) == ["waitlisted", "offered", "accepted"]
    # Accepting twice: there is no open offer any more.
    again = await _post(client, "/offers/accept", event_id, people["bob"])
    assert (again.status_code, again.json()["code"]) == (404, "offer_not_found")
    await check_invariants(database.url, [event_id])


async def test_declining_passes_the_ticket_down_the_line_then_to_the_pool(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    event_id = await _sold_out_with_line(client, people, waitlist_mode="offer")
    await cancel(client, people["alice"], event_id)

    declined = await _post(client, "/offers/decline", event_id, people["bob"])
    assert declined.status_code == 200, declined.text
    assert declined.json() == {"message": "Offer declined", "eventId": event_id}
    assert await my_bookings(client, people["bob"]) == []
    [offer] = await my_bookings(client, people["carol"])
    assert offer["status"] == "offered"

    # Cancelling an open offer is declining it; with nobody left in line the ticket is free.
    cancelled = await cancel(client, people["carol"], event_id)
    assert cancelled.json()["outcome"] == "released"
    status = await event_status(client, people["dave"], event_id)
    assert (status["available_tickets"], status["offered_tickets"]) == (1, 0)
    assert (await book(client, people["dave"], event_id)).status_code == 201
    assert await _actions(client, people["bob"]) == ["waitlisted", "offered", "declined"]
    assert await _actions(client, people["carol"]) == ["waitlisted", "offered", "declined"]
    await check_invariants(database.url, [event_id])


async def test_answering_without_an_offer(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]]
) -> None:
    event_id = await _sold_out_with_line(client, people, waitlist_mode="offer")
    for name in ("alice", "bob", "dave"):  # a ticket, a place in line, nothing at all
        for path in ("/offers/accept", "/offers/decline"):
            response = await _post(client, path, event_id, people[name])
            assert (response.status_code, response.json()["code"]) == (404, "offer_not_found")
    unknown = await _post(client, "/offers/accept", 987654, people["bob"])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "event_not_found")


async def test_a_lapsed_offer_is_refused_and_passed_on_before_any_sweep(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    event_id = await _sold_out_with_line(client, people, waitlist_mode="offer", offer_seconds=1)
    await cancel(client, people["alice"], event_id)
    [offer] = await my_bookings(client, people["bob"])
    await wait_past(_deadline(offer))

    # No sweep has run (the suite's sweeper waits an hour): the late answer expires it.
    late = await _post(client, "/offers/accept", event_id, people["bob"])
    assert late.status_code == 410, late.text
    assert late.json()["code"] == "offer_expired"
    [carols] = await my_bookings(client, people["carol"])
    assert carols["status"] == "offered"
    assert await my_bookings(client, people["bob"]) == []
    # Asking again, either way, gets the same answer; nothing changes twice.
    for path in ("/offers/accept", "/offers/decline"):
        response = await _post(client, path, event_id, people["bob"])
        assert (response.status_code, response.json()["code"]) == (410, "offer_expired")
    assert await _actions(client, people["bob"]) == ["waitlisted", "offered", "expired"]

    # A late decline is refused the same way, and the ticket goes back to the pool.
    await wait_past(_deadline(carols))
    response = await _post(client, "/offers/decline", event_id, people["carol"])
    assert response.status_code == 410
    status = await event_status(client, people["carol"], event_id)
    assert (status["available_tickets"], status["offered_tickets"]) == (1, 0)
    await check_invariants(database.url, [event_id])


async def test_sweeps_racing_each_other_expire_each_offer_once(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database, app: FastAPI
) -> None:
    owner = people["owner"]
    bookers = [people[name] for name in ("alice", "bob", "carol", "dave")]
    event_id = await fill_event(client, owner, bookers, 2, waitlist_mode="offer", offer_seconds=1)
    await cancel(client, people["alice"], event_id)
    await cancel(client, people["bob"], event_id)
    [carols] = await my_bookings(client, people["carol"])
    [daves] = await my_bookings(client, people["dave"])
    assert (carols["status"], daves["status"]) == ("offered", "offered")
    await wait_past(max(_deadline(carols), _deadline(daves)))

    sweeper = app_state(app).offer_sweeper
    expired = await asyncio.gather(*(sweeper.sweep() for _ in range(6)))
    assert sum(expired) == 2, expired
    assert await my_bookings(client, people["carol"]) == []
    status = await event_status(client, owner, event_id)
    assert (status["available_tickets"], status["offered_tickets"]) == (2, 0)
    assert await sweeper.sweep() == 0
    report = await check_invariants(database.url, [event_id])
    assert report[event_id].available == 2


async def test_the_background_sweep_expires_offers_in_every_worker(
    client: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    database: Database,
    settings_factory: Any,
) -> None:
    event_id = await _sold_out_with_line(client, people, waitlist_mode="offer", offer_seconds=1)
    await cancel(client, people["alice"], event_id)
    # Two apps sweeping the same database at once, as two workers would.
    settings = settings_factory(offer_sweep_interval_seconds=0.1)
    async with (
        started_app(settings) as first,
        started_app(settings) as second,
        http_client(first) as one,
        http_client(second) as two,
    ):

        async def carol_was_offered_it() -> bool:
            return [b["status"] for b in await my_bookings(one, people["carol"])] == ["offered"]

        await eventually(carol_was_offered_it, what="Bob's offer to lapse and go to Carol")

        async def nothing_is_held() -> bool:
            status = await event_status(two, people["carol"], event_id)
            return bool(status["available_tickets"] == 1)

        await eventually(nothing_is_held, what="Carol's offer to lapse too")
    assert await _actions(client, people["bob"]) == ["waitlisted", "offered", "expired"]
    assert await _actions(client, people["carol"]) == ["waitlisted", "offered", "expired"]
    await check_invariants(database.url, [event_id])


async def test_switching_modes_keeps_open_offers_and_rules_the_next_ticket(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    event_id = await _sold_out_with_line(client, people, waitlist_mode="offer")
    await cancel(client, people["alice"], event_id)
    changed = await client.patch(
        f"/events/{event_id}", json={"waitlist_mode": "instant"}, headers=people["owner"]
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["waitlist_mode"] == "instant"
    [offer] = await my_bookings(client, people["bob"])
    assert offer["status"] == "offered"  # Bob's offer stands, with its deadline

    await _post(client, "/offers/decline", event_id, people["bob"])
    [ticket] = await my_bookings(client, people["carol"])
    assert ticket["status"] == "confirmed"  # instant now: booked for Carol at once
    assert await _actions(client, people["carol"]) == ["waitlisted", "promoted"]
    await check_invariants(database.url, [event_id])


async def test_an_offer_gets_its_whole_time_however_long_the_event_lock_was_waited_for(
    client: httpx.AsyncClient, people: dict[str, dict[str, str]], database: Database
) -> None:
    # The deadline counts from the moment the cancel held the event's lock, by the database's
    # clock: not from when its locking statement started waiting.
    event_id = await _sold_out_with_line(client, people, waitlist_mode="offer", offer_seconds=60)
    async with connect(database.url) as engine:
        async with engine.begin() as conn:
            await conn.execute(update(Event).where(Event.id == event_id).values(name=Event.name))
            cancelling = asyncio.create_task(cancel(client, people["alice"], event_id))
            await asyncio.sleep(1.5)
        released = datetime.now(UTC)
    assert (await cancelling).status_code == 200
    [offer] = await my_bookings(client, people["bob"])
    assert _deadline(offer) >= released + timedelta(seconds=59.9), (offer, released)
