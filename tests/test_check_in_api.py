"""Check-in at the door: each confirmed ticket has a code only its holder sees; the event's
owner checks it in once."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from booking_service.bench.invariants import check_invariants
from booking_service.db import connect
from booking_service.models import IS_LIVE, Booking
from booking_service.ticket_codes import TicketCodes
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
from tests.support.checks import db_snapshot
from tests.support.databases import Database

NOT_FOUND = {
    "message": "No valid ticket for this event has this code",
    "code": "ticket_not_found",
    "details": None,
}


@pytest.fixture
async def people(database: Database, tokens: TokenFactory) -> list[ApiUser]:
    return await api_users(database.url, tokens, 10, prefix="guest")


async def _code(client: httpx.AsyncClient, user: ApiUser, event_id: int) -> str:
    [mine] = [b for b in await my_bookings(client, user.headers) if b["eventId"] == event_id]
    code: str = mine["ticket_code"]
    return code


async def _check_in(
    client: httpx.AsyncClient, owner: ApiUser, event_id: int, code: str
) -> httpx.Response:
    return await client.post(
        f"/events/{event_id}/check-in", json={"code": code}, headers=owner.headers
    )


async def test_the_holder_sees_a_code_and_the_owner_checks_it_in_once(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    owner, alice, bob = people[:3]
    event_id = await create_event(client, owner.headers, 1)
    assert (await book(client, alice.headers, event_id)).status_code == 201
    assert (await book(client, bob.headers, event_id)).status_code == 202

    code = await _code(client, alice, event_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", code), code
    [bobs_place] = await my_bookings(client, bob.headers)
    assert (bobs_place["ticket_code"], bobs_place["checked_in_at"]) == (None, None)
    listed = (await client.get(f"/events/{event_id}/bookings", headers=owner.headers)).json()
    assert code not in str(listed), "only the holder sees the code"

    before = datetime.now(UTC) - timedelta(seconds=1)
    first = await _check_in(client, owner, event_id, code)
    assert first.status_code == 200, first.text
    body = first.json()
    checked_in_at = datetime.fromisoformat(body.pop("checked_in_at"))
    assert before <= checked_in_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert body == {
        "message": "Ticket checked in",
        "eventId": event_id,
        "bookingId": body["bookingId"],
        "userId": alice.id,
        "username": "guest000001",
        "quantity": 1,
    }

    again = await _check_in(client, owner, event_id, code)
    assert (again.status_code, again.json()["code"]) == (409, "already_checked_in")
    assert datetime.fromisoformat(again.json()["checked_in_at"]) == checked_in_at

    assert (await event_status(client, bob.headers, event_id))["checked_in_tickets"] == 1
    [alices] = await my_bookings(client, alice.headers)
    assert datetime.fromisoformat(alices["checked_in_at"]) == checked_in_at
    listed = (await client.get(f"/events/{event_id}/bookings", headers=owner.headers)).json()
    assert listed["checked_in_tickets"] == 1
    assert [b["checked_in_at"] is not None for b in listed["items"]] == [True, False]
    history = (await client.get(f"/events/{event_id}/history", headers=owner.headers)).json()
    assert history["items"][0]["action"] == "checked_in"
    await check_invariants(database.url, [event_id])


async def test_a_checked_in_ticket_cannot_be_given_back(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    owner, alice = people[:2]
    event_id = await create_event(client, owner.headers, 2)
    await book(client, alice.headers, event_id)
    assert (
        await _check_in(client, owner, event_id, await _code(client, alice, event_id))
    ).is_success
    refused = await cancel(client, alice.headers, event_id)
    assert (refused.status_code, refused.json()["code"]) == (409, "checked_in")
    assert len(await my_bookings(client, alice.headers)) == 1

    # Cancelling the event releases it all the same, and the door count with it.
    assert (await client.post(f"/events/{event_id}/cancel", headers=owner.headers)).is_success
    assert (await event_status(client, owner.headers, event_id))["checked_in_tickets"] == 0
    await check_invariants(database.url, [event_id])


async def test_unknown_cancelled_foreign_or_forged_codes_get_one_404(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    owner, alice, bob, carol = people[:4]
    event_id = await create_event(client, owner.headers, 5)
    other_event = await create_event(client, owner.headers, 5)
    for user in (alice, bob):
        await book(client, user.headers, event_id)
    await book(client, carol.headers, other_event)
    alices = await _code(client, alice, event_id)
    bobs = await _code(client, bob, event_id)
    carols = await _code(client, carol, other_event)
    await cancel(client, bob.headers, event_id)

    flipped = alices[:-2] + ("A" if alices[-2] != "A" else "B") + alices[-1]
    never_issued = secrets.token_urlsafe(32)
    # A code made from a leaked seed, without the service's key.
    forged = TicketCodes(b"not-the-key" * 4).code((await _stored_seeds(database.url))[0])
    for code in (never_issued, bobs, carols, flipped, forged):
        response = await _check_in(client, owner, event_id, code)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), code
    assert (await _check_in(client, owner, event_id, alices)).status_code == 200
    await check_invariants(database.url, [event_id, other_event])


async def _stored_seeds(url: str) -> list[str]:
    """The ticket seeds a copy of the database would reveal."""
    async with connect(url) as engine, engine.connect() as conn:
        rows = await conn.execute(select(Booking.ticket_seed).where(IS_LIVE))
        return [seed for seed in rows.scalars() if seed is not None]


async def test_the_database_holds_no_code(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    owner, alice = people[:2]
    event_id = await create_event(client, owner.headers, 1)
    await book(client, alice.headers, event_id)
    code = await _code(client, alice, event_id)
    dump = str(await db_snapshot(database.url))
    assert code not in dump
    # Its first half is the stored seed; the tag, keyed by a secret the database never saw,
    # is nowhere.
    assert code[22:] not in dump


async def test_only_the_owner_checks_in(client: httpx.AsyncClient, people: list[ApiUser]) -> None:
    owner, alice = people[:2]
    event_id = await create_event(client, owner.headers, 1)
    await book(client, alice.headers, event_id)
    code = await _code(client, alice, event_id)
    by_holder = await _check_in(client, alice, event_id, code)
    assert (by_holder.status_code, by_holder.json()["code"]) == (403, "not_event_owner")
    unknown = await _check_in(client, owner, 987654, code)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "event_not_found")
    for bad in ("short", code + "x", code[:-1] + "=", code[:-1] + "é"):
        response = await _check_in(client, owner, event_id, bad)
        assert response.status_code == 422, bad
    assert (await _check_in(client, owner, event_id, code)).status_code == 200


async def test_two_doors_scanning_one_code_at_once_let_one_in(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    owner, *guests = people
    event_id = await create_event(client, owner.headers, len(guests))
    for guest in guests:
        await book(client, guest.headers, event_id)
    codes = [await _code(client, guest, event_id) for guest in guests]
    answers = await asyncio.gather(
        *(_check_in(client, owner, event_id, code) for code in codes for _ in range(4))
    )
    assert Counter(a.status_code for a in answers) == {200: len(guests), 409: 3 * len(guests)}
    assert (await event_status(client, owner.headers, event_id))["checked_in_tickets"] == len(
        guests
    )
    await check_invariants(database.url, [event_id])
