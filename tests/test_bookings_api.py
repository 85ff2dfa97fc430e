"""Bookings: POST /book, POST /cancel and GET /me/bookings, on both databases.

Every refused request is checked to leave the database exactly as it was.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from booking_service.bench.invariants import check_invariants
from booking_service.models import BookingStatus
from booking_service.schemas.common import MAX_DB_ID
from tests.support.api import (
    ApiUser,
    TokenFactory,
    api_users,
    book,
    cancel,
    create_event,
    event_status,
    fill_event,
    my_bookings,
    status_counts,
)
from tests.support.checks import assert_unchanged, booking_records
from tests.support.databases import Database

BOOKED = "Ticket booked"
WAITLISTED = "No tickets available, you are added to waiting list"
REASSIGNED = "Booking canceled, ticket assigned to another user on the waiting list"
RELEASED = "Booking canceled, ticket now available to other users"
LEFT_LINE = "You left the waiting list"
ALREADY_BOOKED = {
    "message": "You already hold a ticket or a place in line for this event",
    "code": "already_booked",
    "details": None,
}
EVENT_NOT_FOUND = {"message": "Event not found", "code": "event_not_found", "details": None}
NOTHING_TO_CANCEL = {
    "message": "You hold no ticket or place in line for this event",
    "code": "booking_not_found",
    "details": None,
}


@pytest.fixture
async def users(database: Database, tokens: TokenFactory) -> list[ApiUser]:
    return await api_users(database.url, tokens, 8)


async def positions(
    client: httpx.AsyncClient, people: list[ApiUser], event_id: int
) -> list[tuple[str, int | None]]:
    """(status, position) of each user's live claim on the event, via GET /me/bookings."""
    result = []
    for user in people:
        items = [b for b in await my_bookings(client, user.headers) if b["eventId"] == event_id]
        assert len(items) == 1, items
        result.append((items[0]["status"], items[0]["position"]))
    return result


async def test_tickets_are_booked_until_sold_out_then_the_line_forms(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner = users[0]
    event_id = await create_event(client, owner.headers, tickets=2, name="Concert 2025")
    answers = [await book(client, user.headers, event_id) for user in users[:5]]

    assert [a.status_code for a in answers] == [201, 201, 202, 202, 202]
    for answer in answers[:2]:
        assert answer.json() == {
            "message": BOOKED,
            "eventId": event_id,
            "bookingId": answer.json()["bookingId"],
            "status": "confirmed",
            "quantity": 1,
        }
    for place, answer in enumerate(answers[2:], start=1):
        assert answer.json() == {
            "message": WAITLISTED,
            "eventId": event_id,
            "bookingId": answer.json()["bookingId"],
            "status": "waitlisted",
            "position": place,
            "quantity": 1,
        }
    assert len({a.json()["bookingId"] for a in answers}) == 5

    assert status_counts(await event_status(client, owner.headers, event_id)) == (0, 2, 3)
    assert await positions(client, users[:5], event_id) == [
        ("confirmed", None),
        ("confirmed", None),
        ("waitlisted", 1),
        ("waitlisted", 2),
        ("waitlisted", 3),
    ]
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].waiting) == (2, 3)


async def test_a_second_booking_is_409_for_a_ticket_and_for_a_place_in_line(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    holder, waiter = users[:2]
    event_id = await create_event(client, holder.headers, tickets=1)
    assert (await book(client, holder.headers, event_id)).status_code == 201
    assert (await book(client, waiter.headers, event_id)).status_code == 202

    for user in (holder, waiter):
        async with assert_unchanged(database.url, [event_id]):
            again = await book(client, user.headers, event_id)
        assert again.status_code == 409, again.text
        assert again.json() == ALREADY_BOOKED
    assert status_counts(await event_status(client, holder.headers, event_id)) == (0, 1, 1)


async def test_a_second_booking_is_409_while_tickets_remain(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    # The ticket is taken first, then the duplicate row is refused: the count must roll back.
    event_id = await create_event(client, users[0].headers, tickets=5)
    assert (await book(client, users[1].headers, event_id)).status_code == 201
    async with assert_unchanged(database.url, [event_id]):
        again = await book(client, users[1].headers, event_id)
    assert again.status_code == 409
    assert status_counts(await event_status(client, users[0].headers, event_id)) == (4, 1, 0)


async def test_booking_an_unknown_event_is_404(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    event_id = await create_event(client, users[0].headers, tickets=1)
    for unknown in (event_id + 1, MAX_DB_ID):
        async with assert_unchanged(database.url, [event_id]):
            answer = await book(client, users[1].headers, unknown)
        assert answer.status_code == 404, answer.text
        assert answer.json() == EVENT_NOT_FOUND


async def test_cancelling_with_nobody_waiting_releases_the_ticket(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    alice, bob = users[:2]
    event_id = await create_event(client, alice.headers, tickets=1)
    assert (await book(client, alice.headers, event_id)).status_code == 201

    answer = await cancel(client, alice.headers, event_id)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "message": RELEASED,
        "eventId": event_id,
        "outcome": "released",
        "released_tickets": 1,
        "quantity": 0,
    }
    assert status_counts(await event_status(client, alice.headers, event_id)) == (1, 0, 0)
    assert await my_bookings(client, alice.headers) == []
    await check_invariants(database.url, [event_id])

    # The ticket really is free again.
    assert (await book(client, bob.headers, event_id)).status_code == 201


async def test_cancelling_hands_the_ticket_to_the_first_in_line(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    a, b, c, d, e = users[:5]
    event_id = await fill_event(client, a.headers, [u.headers for u in (a, b, c, d, e)], 2)

    answer = await cancel(client, b.headers, event_id)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "message": REASSIGNED,
        "eventId": event_id,
        "outcome": "reassigned",
        "released_tickets": 1,
        "quantity": 0,
    }
    assert status_counts(await event_status(client, a.headers, event_id)) == (0, 2, 2)
    assert await positions(client, [a, c, d, e], event_id) == [
        ("confirmed", None),
        ("confirmed", None),  # c was first in line
        ("waitlisted", 1),
        ("waitlisted", 2),
    ]
    (promoted,) = [x for x in await my_bookings(client, c.headers) if x["eventId"] == event_id]
    assert promoted["promoted_at"] is not None
    assert promoted["confirmed_at"] == promoted["promoted_at"]
    await check_invariants(database.url, [event_id])

    assert (await cancel(client, a.headers, event_id)).json()["outcome"] == "reassigned"
    assert await positions(client, [c, d, e], event_id) == [
        ("confirmed", None),
        ("confirmed", None),
        ("waitlisted", 1),
    ]
    assert status_counts(await event_status(client, a.headers, event_id)) == (0, 2, 1)
    await check_invariants(database.url, [event_id])


async def test_leaving_the_line_moves_everyone_behind_up(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    a, b, c, d, e = users[:5]
    event_id = await fill_event(client, a.headers, [u.headers for u in (a, b, c, d, e)], 1)

    answer = await cancel(client, c.headers, event_id)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "message": LEFT_LINE,
        "eventId": event_id,
        "outcome": "left_waiting_list",
        "released_tickets": 0,
        "quantity": 0,
    }
    assert status_counts(await event_status(client, a.headers, event_id)) == (0, 1, 3)
    assert await positions(client, [b, d, e], event_id) == [
        ("waitlisted", 1),
        ("waitlisted", 2),
        ("waitlisted", 3),
    ]
    assert [x for x in await my_bookings(client, c.headers) if x["eventId"] == event_id] == []
    await check_invariants(database.url, [event_id])

    # The head of the line leaves too; the ticket then goes to d, never to someone who left.
    assert (await cancel(client, b.headers, event_id)).json()["outcome"] == "left_waiting_list"
    assert (await cancel(client, a.headers, event_id)).json()["outcome"] == "reassigned"
    assert await positions(client, [d, e], event_id) == [("confirmed", None), ("waitlisted", 1)]
    # The last person in line leaves: nobody moves, the count drops.
    assert (await cancel(client, e.headers, event_id)).json()["outcome"] == "left_waiting_list"
    assert status_counts(await event_status(client, a.headers, event_id)) == (0, 1, 0)
    await check_invariants(database.url, [event_id])


async def test_nothing_to_cancel_is_404_and_changes_nothing(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    holder, waiter, stranger, quitter, leaver = users[:5]
    bookers = [u.headers for u in (holder, quitter, waiter, leaver)]
    event_id = await fill_event(client, holder.headers, bookers, 2)
    assert (await cancel(client, quitter.headers, event_id)).json()["outcome"] == "reassigned"
    assert (await cancel(client, leaver.headers, event_id)).json()["outcome"] == (
        "left_waiting_list"
    )

    # Never booked; cancelled already; left the line already.
    for user in (stranger, quitter, leaver):
        async with assert_unchanged(database.url, [event_id]):
            answer = await cancel(client, user.headers, event_id)
        assert answer.status_code == 404, answer.text
        assert answer.json() == NOTHING_TO_CANCEL


async def test_another_users_cancel_changes_nothing(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    owner, holder, waiter, other = users[:4]
    event_id = await create_event(client, owner.headers, tickets=1)
    other_event = await create_event(client, owner.headers, tickets=1)
    assert (await book(client, holder.headers, event_id)).status_code == 201
    assert (await book(client, waiter.headers, event_id)).status_code == 202
    assert (await book(client, other.headers, other_event)).status_code == 201

    # The event's owner has no say over other people's tickets, and a booking elsewhere
    # does not count for this event.
    for user in (owner, other):
        async with assert_unchanged(database.url, [event_id, other_event]):
            answer = await cancel(client, user.headers, event_id)
        assert answer.status_code == 404, answer.text
        assert answer.json() == NOTHING_TO_CANCEL
    assert await positions(client, [holder, waiter], event_id) == [
        ("confirmed", None),
        ("waitlisted", 1),
    ]


async def test_cancelling_an_unknown_event_is_404(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    event_id = await create_event(client, users[0].headers, tickets=1)
    assert (await book(client, users[0].headers, event_id)).status_code == 201
    async with assert_unchanged(database.url, [event_id]):
        answer = await cancel(client, users[0].headers, event_id + 1)
    assert answer.status_code == 404, answer.text
    assert answer.json() == EVENT_NOT_FOUND


async def test_my_bookings_lists_live_tickets_and_places_newest_first(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    me, other = users[:2]
    held = await create_event(client, other.headers, tickets=1, name="Held")
    queued = await create_event(client, other.headers, tickets=1, name="Queued")
    given_back = await create_event(client, other.headers, tickets=1, name="Given back")
    left = await create_event(client, other.headers, tickets=1, name="Left")

    assert (await book(client, me.headers, held)).status_code == 201
    for event_id in (queued, left):
        assert (await book(client, other.headers, event_id)).status_code == 201
    assert (await book(client, users[2].headers, queued)).status_code == 202
    assert (await book(client, me.headers, queued)).json()["position"] == 2
    assert (await book(client, me.headers, given_back)).status_code == 201
    assert (await cancel(client, me.headers, given_back)).status_code == 200
    assert (await book(client, me.headers, left)).status_code == 202
    assert (await cancel(client, me.headers, left)).status_code == 200

    items = await my_bookings(client, me.headers)
    assert [(i["eventId"], i["event_name"], i["status"], i["position"]) for i in items] == [
        (queued, "Queued", "waitlisted", 2),
        (held, "Held", "confirmed", None),
    ]
    keys = {
        "bookingId",
        "eventId",
        "event_name",
        "status",
        "quantity",
        "position",
        "created_at",
        "confirmed_at",
        "promoted_at",
        "offer_expires_at",
        "checked_in_at",
        "ticket_code",
    }
    assert all(set(item) == keys for item in items)
    waiting, confirmed = items
    assert waiting["confirmed_at"] is None
    assert waiting["promoted_at"] is None
    assert confirmed["confirmed_at"] is not None
    assert confirmed["promoted_at"] is None
    assert all(i["created_at"].endswith(("Z", "+00:00")) for i in items)
    # Nobody else sees them.
    assert [i["eventId"] for i in await my_bookings(client, users[3].headers)] == []


async def test_rebooking_after_cancelling_goes_to_the_end_of_the_line(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    a, b, c = users[:3]
    event_id = await create_event(client, a.headers, tickets=1)
    assert (await book(client, a.headers, event_id)).status_code == 201
    assert (await book(client, b.headers, event_id)).status_code == 202
    assert (await cancel(client, a.headers, event_id)).json()["outcome"] == "reassigned"

    again = await book(client, a.headers, event_id)
    assert again.status_code == 202
    assert again.json()["position"] == 1
    assert (await book(client, c.headers, event_id)).json()["position"] == 2
    statuses = [
        r.status for r in await booking_records(database.url, event_id) if r.user_id == a.id
    ]
    assert statuses == [BookingStatus.CANCELLED, BookingStatus.WAITLISTED]
    await check_invariants(database.url, [event_id])


async def test_cancelled_left_and_promoted_claims_stay_on_record(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    holder, first, second, third = users[:4]
    bookers = [u.headers for u in (holder, first, second, third)]
    event_id = await fill_event(client, holder.headers, bookers, 1)
    assert (await cancel(client, second.headers, event_id)).status_code == 200  # leaves
    assert (await cancel(client, holder.headers, event_id)).status_code == 200  # to `first`
    assert (await cancel(client, first.headers, event_id)).status_code == 200  # to `third`

    records = {r.user_id: r for r in await booking_records(database.url, event_id)}
    assert len(records) == 4, "every claim keeps its row"

    cancelled = records[holder.id]
    assert (cancelled.status, cancelled.active, cancelled.line_seq) == (
        BookingStatus.CANCELLED,
        None,
        None,
    )
    assert cancelled.confirmed_at is not None
    assert cancelled.ended_at is not None
    assert cancelled.created_at <= cancelled.confirmed_at <= cancelled.ended_at

    left = records[second.id]
    assert (left.status, left.active, left.confirmed_at, left.promoted_at) == (
        BookingStatus.LEFT,
        None,
        None,
        None,
    )
    assert left.line_seq is not None
    assert left.ended_at is not None
    assert left.created_at <= left.ended_at

    promoted_then_cancelled = records[first.id]
    assert promoted_then_cancelled.status is BookingStatus.CANCELLED
    assert promoted_then_cancelled.line_seq is not None, "the place in line stays on record"
    assert promoted_then_cancelled.promoted_at is not None
    assert promoted_then_cancelled.ended_at is not None
    assert promoted_then_cancelled.promoted_at <= promoted_then_cancelled.ended_at

    promoted = records[third.id]
    assert (promoted.status, promoted.active) == (BookingStatus.CONFIRMED, 1)
    assert promoted.promoted_at is not None
    assert promoted.promoted_at == promoted.confirmed_at
    assert promoted.line_seq is not None
    assert left.line_seq < promoted.line_seq
    assert promoted_then_cancelled.promoted_at <= promoted.promoted_at
    await check_invariants(database.url, [event_id])


async def test_events_do_not_share_tickets_or_lines(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser]
) -> None:
    a, b = users[:2]
    small = await create_event(client, a.headers, tickets=1)
    large = await create_event(client, a.headers, tickets=3)
    assert (await book(client, a.headers, small)).status_code == 201
    assert (await book(client, b.headers, small)).status_code == 202
    assert (await book(client, b.headers, large)).status_code == 201
    assert (await cancel(client, b.headers, small)).json()["outcome"] == "left_waiting_list"
    assert status_counts(await event_status(client, a.headers, small)) == (0, 1, 0)
    assert status_counts(await event_status(client, a.headers, large)) == (2, 1, 0)
    assert [(i["eventId"], i["status"]) for i in await my_bookings(client, b.headers)] == [
        (large, "confirmed")
    ]
    await check_invariants(database.url, [small, large])


BAD_BODIES: list[Any] = [
    {"event_id": "<id>"},  # the wire name is eventId
    {"EventId": "<id>"},
    {"eventId": "<id>", "userId": 1},  # unknown fields are refused
    {"eventId": "<id-as-string>"},
    {"eventId": True},
    {"eventId": 1.5},
    {"eventId": 0},
    {"eventId": -1},
    {"eventId": MAX_DB_ID + 1},
    {"eventId": None},
    {"eventId": ["<id>"]},
    {},
    [],
    "<id>",
]


def _fill(body: Any, event_id: int) -> Any:
    if body == "<id>":
        return event_id
    if body == "<id-as-string>":
        return str(event_id)
    if isinstance(body, dict):
        return {key: _fill(value, event_id) for key, value in body.items()}
    if isinstance(body, list):
        return [_fill(value, event_id) for value in body]
    return body


@pytest.mark.parametrize("path", ["/book", "/cancel"])
@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_bodies_are_422_and_change_nothing(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser], path: str, body: Any
) -> None:
    holder, newcomer = users[:2]
    event_id = await create_event(client, holder.headers, tickets=2)
    assert (await book(client, holder.headers, event_id)).status_code == 201
    # Were the body misread as this event, the request would book (newcomer) or cancel (holder).
    user = newcomer if path == "/book" else holder
    async with assert_unchanged(database.url, [event_id]):
        answer = await client.post(path, json=_fill(body, event_id), headers=user.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"
    assert answer.json()["details"]


@pytest.mark.parametrize("path", ["/book", "/cancel"])
async def test_a_body_that_is_not_json_is_refused(
    client: httpx.AsyncClient, database: Database, users: list[ApiUser], path: str
) -> None:
    event_id = await create_event(client, users[0].headers, tickets=1)
    async with assert_unchanged(database.url, [event_id]):
        answer = await client.post(
            path,
            content=b"eventId=1",
            headers={**users[0].headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 415, answer.text
    assert answer.json()["code"] == "unsupported_media_type"


async def test_a_whole_number_written_as_a_float_is_that_number(
    client: httpx.AsyncClient, users: list[ApiUser]
) -> None:
    # JSON has one number type; 3.0 is 3, the same rule as for `tickets`.
    event_id = await create_event(client, users[0].headers, tickets=1)
    answer = await client.post("/book", json={"eventId": float(event_id)}, headers=users[1].headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["eventId"] == event_id
