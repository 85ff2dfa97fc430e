"""Sale windows: an event takes bookings from `sales_start` until `sales_end`, judged by the
database's clock inside the booking's transaction."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
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
from tests.support.timing import wait_past


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
async def people(database: Database, tokens: TokenFactory) -> list[ApiUser]:
    return await api_users(database.url, tokens, 12, prefix="fan")


async def test_before_sales_start_booking_is_refused_with_the_opening_and_retry_after(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    owner, alice, bob = people[:3]
    opening = datetime.now(UTC) + timedelta(seconds=2)
    event_id = await create_event(client, owner.headers, 1, sales_start=_at(opening))

    event = (await client.get(f"/events/{event_id}", headers=alice.headers)).json()
    assert event["state"] == "upcoming"
    assert _when(event["sales_start"]) == opening
    assert event["sales_end"] is None
    assert (await event_status(client, alice.headers, event_id))["state"] == "upcoming"

    early = await book(client, alice.headers, event_id)
    assert early.status_code == 409, early.text
    body = early.json()
    assert body["code"] == "sales_not_started"
    assert _when(body["sales_start"]) == opening
    assert _at(opening) in body["message"]
    wait = int(early.headers["retry-after"])
    assert 1 <= wait <= math.ceil((opening - datetime.now(UTC)).total_seconds()) + 1
    assert await my_bookings(client, alice.headers) == []

    await wait_past(opening)
    assert (await book(client, alice.headers, event_id)).status_code == 201
    assert (await book(client, bob.headers, event_id)).status_code == 202
    assert (await event_status(client, alice.headers, event_id))["state"] == "open"
    await check_invariants(database.url, [event_id])


async def test_a_group_of_bookings_before_the_opening_is_refused_as_one(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    # Sent at once, these bookings are served together in grouped transactions.
    owner, *fans = people
    opening = datetime.now(UTC) + timedelta(seconds=30)
    event_id = await create_event(client, owner.headers, 5, sales_start=_at(opening))
    answers = await asyncio.gather(*(book(client, fan.headers, event_id) for fan in fans))
    assert {(a.status_code, a.json()["code"]) for a in answers} == {(409, "sales_not_started")}
    assert all(int(a.headers["retry-after"]) >= 29 for a in answers)
    status = await event_status(client, owner.headers, event_id)
    assert (status["available_tickets"], status["waiting_list_count"]) == (5, 0)
    await check_invariants(database.url, [event_id])


async def test_after_sales_end_nobody_new_joins_but_claims_carry_on(
    client: httpx.AsyncClient, people: list[ApiUser], database: Database
) -> None:
    owner, alice, bob, carol = people[:4]
    ending = datetime.now(UTC) + timedelta(seconds=1.5)
    started = datetime.now(UTC) - timedelta(minutes=1)
    event_id = await create_event(
        client, owner.headers, 1, sales_start=_at(started), sales_end=_at(ending)
    )
    assert (await book(client, alice.headers, event_id)).status_code == 201
    assert (await book(client, bob.headers, event_id)).status_code == 202

    await wait_past(ending)
    late = await book(client, carol.headers, event_id)
    assert (late.status_code, late.json()["code"]) == (409, "sales_ended")
    assert "retry-after" not in late.headers
    assert (await event_status(client, owner.headers, event_id))["state"] == "closed"
    # Alice gives her ticket back: it still goes to Bob, first in line.
    given_back = await cancel(client, alice.headers, event_id)
    assert given_back.json()["outcome"] == "reassigned"
    [bobs] = await my_bookings(client, bob.headers)
    assert bobs["status"] == "confirmed"
    await check_invariants(database.url, [event_id])


async def test_a_booking_refused_before_the_opening_is_not_replayed_after_it(
    client: httpx.AsyncClient, people: list[ApiUser]
) -> None:
    owner, alice = people[:2]
    opening = datetime.now(UTC) + timedelta(seconds=1)
    event_id = await create_event(client, owner.headers, 1, sales_start=_at(opening))
    headers = {**alice.headers, "Idempotency-Key": "opening-day-1"}
    early = await client.post("/book", json={"eventId": event_id}, headers=headers)
    assert early.status_code == 409
    await wait_past(opening)
    booked = await client.post("/book", json={"eventId": event_id}, headers=headers)
    assert booked.status_code == 201, booked.text
    again = await client.post("/book", json={"eventId": event_id}, headers=headers)
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"sales_start": "2030-01-01T10:00:00Z", "sales_end": "2030-01-01T10:00:00Z"}, "sales_end"),
        ({"sales_start": "2030-01-02T00:00:00Z", "sales_end": "2030-01-01T23:00:00Z"}, "sales_end"),
        ({"sales_start": "2030-01-01T10:00:00"}, "sales_start"),  # no zone
        ({"sales_start": "2030-01-01"}, "sales_start"),
        ({"sales_start": 1893492000}, "sales_start"),
        ({"sales_end": "9999-12-31T23:00:00-05:00"}, "sales_end"),
        ({"sales_start": "0001-01-01T00:00:00Z"}, "sales_start"),
        ({"transfers_allowed": "yes"}, "transfers_allowed"),
    ],
)
async def test_a_bad_window_is_refused_with_422(
    client: httpx.AsyncClient, people: list[ApiUser], fields: dict[str, Any], where: str
) -> None:
    response = await client.post(
        "/initialize", json={"name": "Gig", "tickets": 5, **fields}, headers=people[0].headers
    )
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["details"]] == [["body", where]]


async def test_times_are_stored_and_shown_in_utc(
    client: httpx.AsyncClient, people: list[ApiUser]
) -> None:
    event_id = await create_event(
        client,
        people[0].headers,
        5,
        sales_start="2030-06-01T20:00:00+02:00",
        sales_end="2030-06-01T20:00:00.5-04:00",
    )
    event = (await client.get(f"/events/{event_id}", headers=people[0].headers)).json()
    assert (event["sales_start"], event["sales_end"]) == (
        "2030-06-01T18:00:00Z",
        "2030-06-02T00:00:00.500000Z",
    )


async def test_the_owner_moves_the_window_and_transfers_setting(
    client: httpx.AsyncClient, people: list[ApiUser]
) -> None:
    owner, alice = people[:2]
    event_id = await create_event(client, owner.headers, 5)
    later = datetime.now(UTC) + timedelta(hours=1)
    changed = await client.patch(
        f"/events/{event_id}",
        json={"sales_start": _at(later), "transfers_allowed": False},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["state"], changed.json()["transfers_allowed"]) == ("upcoming", False)
    early = await book(client, alice.headers, event_id)
    assert early.json()["code"] == "sales_not_started"

    # The end is judged against the start already stored: the body alone was valid.
    before_start = await client.patch(
        f"/events/{event_id}",
        json={"sales_end": _at(later - timedelta(minutes=1))},
        headers=owner.headers,
    )
    assert before_start.status_code == 409, before_start.text
    assert before_start.json()["code"] == "sale_window_empty"

    # A start in the past opens sales at once.
    opened = await client.patch(
        f"/events/{event_id}",
        json={"sales_start": _at(datetime.now(UTC) - timedelta(seconds=1))},
        headers=owner.headers,
    )
    assert opened.json()["state"] == "open"
    assert (await book(client, alice.headers, event_id)).status_code == 201
    not_owner = await client.patch(
        f"/events/{event_id}", json={"transfers_allowed": True}, headers=alice.headers
    )
    assert not_owner.status_code == 403
