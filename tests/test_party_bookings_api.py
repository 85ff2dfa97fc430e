"""Party bookings through the API: all or nothing, the line served whole parties first come
first served, partial cancels, and the counts in tickets. Every state is checked against the
invariants, and every refusal to leave the database as it was."""

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
from tests.support.checks import assert_unchanged
from tests.support.databases import Database


@pytest.fixture
async def users(database: Database, tokens: TokenFactory) -> list[ApiUser]:
    return await api_users(database.url, tokens, 6, prefix="party")


def counts(status: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(available, booked, entries in line, tickets in line, first_in_line_needs)."""
    return (
        status["available_tickets"],
        status["total_ticket_booked"],
        status["waiting_list_count"],
        status["waiting_list_tickets"],
        status["first_in_line_needs"],
    )


async def party_event(
    client: httpx.AsyncClient, owner: ApiUser, tickets: int, **fields: Any
) -> int:
    return await create_event(client, owner.headers, tickets, max_per_user=6, **fields)


async def mine(client: httpx.AsyncClient, user: ApiUser, event_id: int) -> dict[str, Any]:
    [claim] = [b for b in await my_bookings(client, user.headers) if b["eventId"] == event_id]
    return claim


async def test_a_party_is_booked_whole_and_counted_in_tickets(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann = users[:2]
    event_id = await party_event(client, owner, 5)
    booked = await book(client, ann.headers, event_id, 3)
    assert booked.status_code == 201, booked.text
    assert (booked.json()["status"], booked.json()["quantity"]) == ("confirmed", 3)
    assert counts(await event_status(client, owner.headers, event_id)) == (2, 3, 0, 0, 0)
    claim = await mine(client, ann, event_id)
    assert (claim["status"], claim["quantity"]) == ("confirmed", 3)
    [entry] = (await client.get("/me/history", headers=ann.headers)).json()["items"]
    assert (entry["action"], entry["quantity"]) == ("booked", 3)
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].available) == (3, 2)


async def test_a_party_that_does_not_fit_waits_whole_as_one_entry(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben, cat = users[:4]
    event_id = await party_event(client, owner, 4)
    assert (await book(client, ann.headers, event_id, 3)).status_code == 201
    waiting = await book(client, ben.headers, event_id, 2)
    assert waiting.status_code == 202, waiting.text
    assert (waiting.json()["position"], waiting.json()["quantity"]) == (1, 2)
    # One ticket is free, Ben's party of two waits: a newcomer of one never passes it.
    newcomer = await book(client, cat.headers, event_id, 1)
    assert (newcomer.status_code, newcomer.json()["position"]) == (202, 2)
    assert counts(await event_status(client, owner.headers, event_id)) == (1, 3, 2, 3, 1)
    await check_invariants(database.url, [event_id])


async def test_freed_tickets_serve_the_first_party_once_it_fits_then_the_next(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben, cat, dan = users[:5]
    event_id = await party_event(client, owner, 4)
    assert (await book(client, ann.headers, event_id, 2)).status_code == 201
    assert (await book(client, dan.headers, event_id, 2)).status_code == 201
    assert (await book(client, ben.headers, event_id, 3)).status_code == 202
    assert (await book(client, cat.headers, event_id, 1)).status_code == 202
    # Two free: Ben wants three, so nobody is served, not even Cat behind him.
    released = await cancel(client, ann.headers, event_id)
    assert released.json()["outcome"] == "released"
    assert counts(await event_status(client, owner.headers, event_id)) == (2, 2, 2, 4, 1)
    assert (await mine(client, cat, event_id))["status"] == "waitlisted"
    # Two more: Ben's three, then Cat's one.
    handed = await cancel(client, dan.headers, event_id)
    assert (handed.json()["outcome"], handed.json()["released_tickets"]) == ("reassigned", 2)
    assert counts(await event_status(client, owner.headers, event_id)) == (0, 4, 0, 0, 0)
    ben_claim = await mine(client, ben, event_id)
    assert (ben_claim["status"], ben_claim["quantity"]) == ("confirmed", 3)
    assert (await mine(client, cat, event_id))["status"] == "confirmed"
    await check_invariants(database.url, [event_id])


async def test_a_partial_cancel_keeps_the_rest_and_serves_the_line(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben = users[:3]
    event_id = await party_event(client, owner, 4)
    assert (await book(client, ann.headers, event_id, 4)).status_code == 201
    assert (await book(client, ben.headers, event_id, 2)).status_code == 202
    # Ann, the last holder, gives one back: not enough for Ben.
    one = await cancel(client, ann.headers, event_id, 1)
    assert one.status_code == 200, one.text
    assert one.json() | {"message": None} == {
        "message": None,
        "eventId": event_id,
        "outcome": "released",
        "released_tickets": 1,
        "quantity": 3,
    }
    assert counts(await event_status(client, owner.headers, event_id)) == (1, 3, 1, 2, 1)
    # One more: Ben's two are booked, Ann keeps two.
    two = await cancel(client, ann.headers, event_id, 1)
    assert (two.json()["outcome"], two.json()["quantity"]) == ("reassigned", 2)
    assert (await mine(client, ann, event_id))["quantity"] == 2
    assert counts(await event_status(client, owner.headers, event_id)) == (0, 4, 0, 0, 0)
    history = (await client.get("/me/history", headers=ann.headers)).json()["items"]
    assert [(e["action"], e["quantity"]) for e in reversed(history)] == [
        ("booked", 4),
        ("cancelled", 1),
        ("cancelled", 1),
    ]
    await check_invariants(database.url, [event_id])
    # Cancelling all that is left ends the booking.
    rest = await cancel(client, ann.headers, event_id, 2)
    assert (rest.json()["released_tickets"], rest.json()["quantity"]) == (2, 0)
    assert [b for b in await my_bookings(client, ann.headers) if b["eventId"] == event_id] == []
    await check_invariants(database.url, [event_id])


async def test_a_party_in_line_may_want_fewer_and_keeps_its_place(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben, cat = users[:4]
    event_id = await party_event(client, owner, 3)
    assert (await book(client, ann.headers, event_id, 2)).status_code == 201
    assert (await book(client, ben.headers, event_id, 3)).status_code == 202
    assert (await book(client, cat.headers, event_id, 1)).status_code == 202
    # Ben wants one fewer: still two, one free; he keeps his place, Cat stays behind him.
    fewer = await cancel(client, ben.headers, event_id, 1)
    assert fewer.json() | {"message": None} == {
        "message": None,
        "eventId": event_id,
        "outcome": "left_waiting_list",
        "released_tickets": 0,
        "quantity": 2,
    }
    ben_claim = await mine(client, ben, event_id)
    assert (ben_claim["status"], ben_claim["position"], ben_claim["quantity"]) == (
        "waitlisted",
        1,
        2,
    )
    assert counts(await event_status(client, owner.headers, event_id)) == (1, 2, 2, 3, 1)
    # One fewer again: his one fits at once, and the line moves on to Cat (none left for her).
    assert (await cancel(client, ben.headers, event_id, 1)).status_code == 200
    assert (await mine(client, ben, event_id))["status"] == "confirmed"
    assert counts(await event_status(client, owner.headers, event_id)) == (0, 3, 1, 1, 1)
    await check_invariants(database.url, [event_id])


async def test_bad_quantities_are_refused_and_change_nothing(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben = users[:3]
    event_id = await create_event(client, owner.headers, 3, max_per_user=4)
    assert (await book(client, ann.headers, event_id, 2)).status_code == 201
    async with assert_unchanged(database.url, [event_id]):
        over_limit = await book(client, ben.headers, event_id, 5)
        assert over_limit.status_code == 422
        assert over_limit.json()["message"] == "quantity must be at most 4 for this event"
        assert over_limit.json()["details"][0]["loc"] == ["body", "quantity"]
        # Within max_per_user, above the capacity: it could never be served, so 409 at once.
        too_large = await book(client, ben.headers, event_id, 4)
        assert too_large.status_code == 409
        assert too_large.json()["code"] == "party_too_large"
        assert too_large.json()["message"] == "A party of 4 cannot fit: the event has 3 tickets"
        above_held = await cancel(client, ann.headers, event_id, 3)
        assert above_held.status_code == 422
        assert above_held.json()["message"] == "quantity must be at most 2: that is what you hold"
        for body in ({"eventId": event_id, "quantity": 0}, {"eventId": event_id, "quantity": "2"}):
            assert (await client.post("/book", json=body, headers=ben.headers)).status_code == 422
            assert (await client.post("/cancel", json=body, headers=ann.headers)).status_code == 422
        # The refusal order: a claim already held comes before the quantity.
        again = await book(client, ann.headers, event_id, 9)
        assert (again.status_code, again.json()["code"]) == (409, "already_booked")


async def test_max_per_user_is_set_changed_and_bounded(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, ann, ben = users[:3]
    too_many = await client.post(
        "/initialize", json={"name": "Gig", "tickets": 5, "max_per_user": 11}, headers=owner.headers
    )
    assert too_many.status_code == 422
    assert too_many.json()["message"] == "max_per_user must be at most 10"
    event_id = await create_event(client, owner.headers, 10)
    one_only = await book(client, ann.headers, event_id, 2)
    assert one_only.json()["message"] == "quantity must be at most 1 for this event"
    patched = await client.patch(
        f"/events/{event_id}", json={"max_per_user": 4}, headers=owner.headers
    )
    assert (patched.status_code, patched.json()["max_per_user"]) == (200, 4)
    assert (await book(client, ann.headers, event_id, 4)).status_code == 201
    # Lowering it leaves Ann's four as they are, and bounds new bookings only.
    lowered = await client.patch(
        f"/events/{event_id}", json={"max_per_user": 2}, headers=owner.headers
    )
    assert lowered.status_code == 200
    assert (await mine(client, ann, event_id))["quantity"] == 4
    assert (await book(client, ben.headers, event_id, 3)).status_code == 422
    over = await client.patch(
        f"/events/{event_id}", json={"max_per_user": 11}, headers=owner.headers
    )
    assert (over.status_code, over.json()["message"]) == (422, "max_per_user must be at most 10")
    await check_invariants(database.url, [event_id])


async def test_quantity_one_answers_exactly_as_before(
    client: httpx.AsyncClient, users: list[ApiUser]
) -> None:
    owner, ann, ben = users[:3]
    first = await create_event(client, owner.headers, 1)
    second = await create_event(client, owner.headers, 1)
    for user in (ann, ben):
        plain = await book(client, user.headers, first)
        explicit = await book(client, user.headers, second, 1)
        strip = {"bookingId", "eventId"}
        assert plain.status_code == explicit.status_code
        assert {k: v for k, v in plain.json().items() if k not in strip} == {
            k: v for k, v in explicit.json().items() if k not in strip
        }
    assert (await cancel(client, ann.headers, first)).json() == (
        await cancel(client, ann.headers, second, 1)
    ).json() | {"eventId": first}
