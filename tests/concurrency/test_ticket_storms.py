"""Transfers and check-ins racing everything that can happen to the same ticket at once, over
real sockets against a real `booking-service serve` (two workers on MariaDB).

Each storm runs many independent races side by side; in each, exactly one contender wins,
and afterwards nothing is duplicated or lost: the invariants hold straight from the database
(transfers given = received, checked-in counts), and every holder reads back one claim.
"""

from __future__ import annotations

from collections import Counter

import pytest

from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import bulk_username
from booking_service.models import BookingStatus
from tests.concurrency.conftest import RunningServer
from tests.concurrency.storm import Call, StormResult, http_client, live_claims, report, storm
from tests.support.api import ApiUser, TokenFactory, api_users, book, create_event, status_counts
from tests.support.checks import booking_records
from tests.support.databases import Database

pytestmark = pytest.mark.slow

RACES = 40


async def _event_held_by(
    server: RunningServer, owner: ApiUser, holders: list[ApiUser], tickets: int
) -> int:
    async with http_client(server.base_url) as client:
        event_id = await create_event(client, owner.headers, tickets=tickets, name="Storm")
        for holder in holders:
            assert (await book(client, holder.headers, event_id)).status_code == 201
    return event_id


async def _people(db: Database, tokens: TokenFactory, prefix: str, count: int) -> list[ApiUser]:
    return await api_users(db.url, tokens, count, prefix=prefix)


def _transfer(holder: ApiUser, event_id: int, prefix: str, index: int, role: str) -> Call:
    return Call("transfer", holder, event_id, role, {"toUsername": bulk_username(prefix, index)})


def _by_holder(result: StormResult, holders: list[ApiUser]) -> dict[int, list[tuple[str, int]]]:
    answers: dict[int, list[tuple[str, int]]] = {h.id: [] for h in holders}
    for answer in result.answers:
        if answer.call.user.id in answers:
            answers[answer.call.user.id].append((answer.call.role, answer.status))
    return answers


async def _settled(server: RunningServer, db: Database, event_id: int) -> None:
    await check_invariants(db.url, [event_id])
    assert server.new_log().count("Traceback") == 0


async def test_a_transfer_racing_a_cancel_of_the_same_ticket(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    owner, *holders = await _people(storm_db, server_tokens, "gift", RACES + 1)
    friends = await _people(storm_db, server_tokens, "pal", RACES)
    waiting = await _people(storm_db, server_tokens, "wait", 10)
    event_id = await _event_held_by(server, owner, holders, RACES)
    async with http_client(server.base_url) as client:  # sold out: the line takes freed tickets
        for person in waiting:
            assert (await book(client, person.headers, event_id)).status_code == 202
    calls = [_transfer(h, event_id, "pal", i, "transfer") for i, h in enumerate(holders)]
    calls += [Call("cancel", h, event_id, "cancel") for h in holders]

    result = await storm(server.base_url, calls)
    report(f"{RACES} transfers racing their cancels", server.name, result)
    result.assert_no_server_errors()
    for answers in _by_holder(result, holders).values():
        assert sorted(status for _, status in answers) == [200, 404], answers
    transferred = sum(1 for a in result.of("transfer") if a.status == 200)
    claims = await live_claims(server.base_url, friends, event_id)
    assert len(claims) == transferred
    assert all(c["status"] == "confirmed" for c in claims.values())
    assert not await live_claims(server.base_url, holders, event_id)
    # Freed tickets went to the line first: tickets are all held by friends or the line.
    async with http_client(server.base_url) as client:
        status = (await client.get(f"/status/{event_id}", headers=owner.headers)).json()
    given_back = RACES - transferred
    assert status_counts(status) == (
        max(0, given_back - len(waiting)),
        transferred + min(given_back, len(waiting)),
        max(0, len(waiting) - given_back),
    )
    await _settled(server, storm_db, event_id)


async def test_one_ticket_sent_to_two_friends_at_once(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    owner, *holders = await _people(storm_db, server_tokens, "dual", RACES + 1)
    friends = await _people(storm_db, server_tokens, "twin", 2 * RACES)
    event_id = await _event_held_by(server, owner, holders, RACES)
    calls = [_transfer(h, event_id, "twin", 2 * i, "first") for i, h in enumerate(holders)]
    calls += [_transfer(h, event_id, "twin", 2 * i + 1, "second") for i, h in enumerate(holders)]

    result = await storm(server.base_url, calls)
    report(f"{RACES} tickets each sent to two friends", server.name, result)
    result.assert_no_server_errors()
    for answers in _by_holder(result, holders).values():
        assert sorted(status for _, status in answers) == [200, 404], answers
    claims = await live_claims(server.base_url, friends, event_id)
    assert len(claims) == RACES
    rows = await booking_records(storm_db.url, event_id)
    assert Counter(r.status for r in rows) == {
        BookingStatus.TRANSFERRED: RACES,
        BookingStatus.CONFIRMED: RACES,
    }
    await _settled(server, storm_db, event_id)


async def test_a_transfer_racing_the_recipient_booking_the_same_event(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    owner, *holders = await _people(storm_db, server_tokens, "give", RACES + 1)
    friends = await _people(storm_db, server_tokens, "take", RACES)
    # Room left for the friends' own bookings, so either contender can win each race.
    event_id = await _event_held_by(server, owner, holders, 2 * RACES)
    calls = [_transfer(h, event_id, "take", i, "transfer") for i, h in enumerate(holders)]
    calls += [Call("book", f, event_id, "book") for f in friends]

    result = await storm(server.base_url, calls)
    report(f"{RACES} transfers racing the recipients' own bookings", server.name, result)
    result.assert_no_server_errors()
    transfers = result.of("transfer")
    own = result.of("book")
    for transfer, booking in zip(transfers, own, strict=True):
        outcomes = (transfer.status, booking.status)
        assert outcomes in ((200, 409), (409, 201)), outcomes
        refused = booking if transfer.status == 200 else transfer
        assert refused.body["code"] in ("already_booked", "recipient_already_booked")
    claims = await live_claims(server.base_url, friends, event_id)
    assert len(claims) == RACES, "each friend holds exactly one ticket"
    await _settled(server, storm_db, event_id)


async def test_transfers_racing_the_owner_cancelling_the_event(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    owner, *holders = await _people(storm_db, server_tokens, "host", RACES + 1)
    await _people(storm_db, server_tokens, "mate", RACES)
    event_id = await _event_held_by(server, owner, holders, RACES)
    calls = [_transfer(h, event_id, "mate", i, "transfer") for i, h in enumerate(holders)]
    calls.insert(RACES // 2, Call("cancel_event", owner, event_id, "owner"))

    result = await storm(server.base_url, calls)
    report(f"{RACES} transfers racing the event's cancellation", server.name, result)
    result.assert_no_server_errors()
    [cancelled] = result.of("owner")
    assert cancelled.status == 200
    moved = sum(1 for a in result.of("transfer") if a.status == 200)
    assert Counter(a.status for a in result.of("transfer")) == Counter(
        {200: moved, 404: RACES - moved}
    )
    # Whatever moved before the cancellation was released with everything else.
    assert cancelled.body["released_tickets"] == RACES
    rows = await booking_records(storm_db.url, event_id)
    assert all(r.active is None for r in rows)
    assert sum(r.status is BookingStatus.TRANSFERRED for r in rows) == moved
    await _settled(server, storm_db, event_id)


async def test_two_doors_scanning_each_code_at_once(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    owner, *holders = await _people(storm_db, server_tokens, "door", RACES + 1)
    event_id = await _event_held_by(server, owner, holders, RACES)
    claims = await live_claims(server.base_url, holders, event_id)
    codes = [claims[h.id]["ticket_code"] for h in holders]
    calls = [
        Call("check_in", owner, event_id, f"door{door}", {"code": code})
        for code in codes
        for door in (1, 2)
    ]

    result = await storm(server.base_url, calls)
    report(f"{RACES} codes scanned at two doors at once", server.name, result)
    result.assert_no_server_errors()
    for first, second in zip(result.answers[::2], result.answers[1::2], strict=True):
        assert sorted((first.status, second.status)) == [200, 409]
        loser = first if first.status == 409 else second
        winner = second if loser is first else first
        assert loser.body["code"] == "already_checked_in"
        assert loser.body["checked_in_at"] == winner.body["checked_in_at"]
    async with http_client(server.base_url) as client:
        status = (await client.get(f"/status/{event_id}", headers=owner.headers)).json()
    assert status["checked_in_tickets"] == RACES
    await _settled(server, storm_db, event_id)
