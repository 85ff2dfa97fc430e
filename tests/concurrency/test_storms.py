"""Hundreds of concurrent HTTP clients against a real `booking-service serve`.

After every storm: the invariants straight from the database (check_invariants), every
acknowledged answer matched to its row and every row to an answer, places in line read back
through GET /me/bookings as exactly 1..n, and no 5xx at all.
"""

from __future__ import annotations

from collections import Counter

import pytest

from booking_service.bench.invariants import check_invariants
from booking_service.models import BookingStatus
from tests.concurrency.conftest import RunningServer
from tests.concurrency.storm import (
    Answer,
    Call,
    http_client,
    live_claims,
    report,
    status_of,
    storm,
)
from tests.support.api import ApiUser, TokenFactory, api_users, create_event, status_counts
from tests.support.checks import BookingRecord, booking_records
from tests.support.databases import Database

pytestmark = pytest.mark.slow


async def new_event(server: RunningServer, owner: ApiUser, tickets: int) -> int:
    async with http_client(server.base_url) as client:
        return await create_event(client, owner.headers, tickets=tickets, name="Storm")


def assert_answer_matches_row(answer: Answer, rows: dict[int, BookingRecord]) -> BookingRecord:
    """A 201/202 names its booking: the row exists, belongs to the caller and says the same."""
    row = rows.get(answer.body["bookingId"])
    assert row is not None, f"acknowledged booking {answer.body} has no row"
    assert (row.user_id, row.event_id) == (answer.call.user.id, answer.call.event_id)
    if answer.status == 201:
        assert row.line_seq is None, "a 201 must not have gone through the line"
        assert row.confirmed_at is not None
        assert row.promoted_at is None
    else:
        assert answer.status == 202
        assert row.line_seq is not None, "a 202 must hold a place-in-line number"
    return row


async def assert_line_positions(
    server: RunningServer, users: list[ApiUser], event_id: int, rows: list[BookingRecord]
) -> None:
    """GET /me/bookings of everyone: places are 1..n once each, in line-number order."""
    claims = await live_claims(server.base_url, users, event_id)
    live = {r.user_id: r for r in rows if r.active == 1}
    assert set(claims) == set(live), "GET /me/bookings disagrees with the live rows"
    line = sorted(
        (r for r in live.values() if r.status is BookingStatus.WAITLISTED),
        key=lambda r: r.line_seq or 0,
    )
    assert [claims[r.user_id]["position"] for r in line] == list(range(1, len(line) + 1))
    for user_id, row in live.items():
        assert claims[user_id]["bookingId"] == row.id
        assert claims[user_id]["status"] == row.status.value
        if row.status is BookingStatus.CONFIRMED:
            assert claims[user_id]["position"] is None


async def test_many_more_users_than_tickets(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    fans, tickets = 400, 50
    users = await api_users(storm_db.url, server_tokens, fans, prefix="fan")
    event_id = await new_event(server, users[0], tickets)

    result = await storm(server.base_url, [Call("book", u, event_id, "fan") for u in users])
    report(f"{fans} users book {tickets} tickets", server.name, result)
    result.assert_no_server_errors()
    assert result.statuses() == Counter({201: tickets, 202: fans - tickets})
    waitlisted = [a for a in result.answers if a.status == 202]
    # Nobody leaves, so the places handed out are exactly 1..n.
    assert sorted(a.body["position"] for a in waitlisted) == list(range(1, fans - tickets + 1))

    records = await booking_records(storm_db.url, event_id)
    rows = {r.id: r for r in records}
    assert len(rows) == fans, "one row per request, no more, no less"
    for answer in result.answers:
        row = assert_answer_matches_row(answer, rows)
        expected = BookingStatus.CONFIRMED if answer.status == 201 else BookingStatus.WAITLISTED
        assert row.status is expected
    # The place each 202 announced is its rank by line number: first come, first served.
    place = {a.body["bookingId"]: a.body["position"] for a in waitlisted}
    line = sorted((r for r in records if r.line_seq is not None), key=lambda r: r.line_seq or 0)
    assert [place[r.id] for r in line] == list(range(1, len(line) + 1))

    await assert_line_positions(server, users, event_id, records)
    status = await status_of(server.base_url, users[0], event_id)
    assert status_counts(status) == (0, tickets, fans - tickets)
    report_ = await check_invariants(storm_db.url, [event_id])
    assert report_[event_id].confirmed == tickets
    assert server.new_log().count("Traceback") == 0


async def test_cancels_books_and_leaves_all_at_once(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    tickets = 60
    people = await api_users(storm_db.url, server_tokens, 60 + 40 + 150 + 30, prefix="mix")
    holders, waiters = people[:60], people[60:100]
    newcomers, strangers = people[100:250], people[250:]
    leavers, stayers = waiters[:20], waiters[20:]
    event_id = await new_event(server, people[0], tickets)

    # Set the scene: every ticket held, 40 people in line.
    setup = await storm(server.base_url, [Call("book", u, event_id, "holder") for u in holders])
    assert setup.statuses() == Counter({201: 60})
    setup = await storm(server.base_url, [Call("book", u, event_id, "waiter") for u in waiters])
    assert setup.statuses() == Counter({202: 40})
    assert sorted(a.body["position"] for a in setup.answers) == list(range(1, 41))
    before = {r.id for r in await booking_records(storm_db.url, event_id)}

    calls = (
        [Call("cancel", u, event_id, "holder") for u in holders]
        + [Call("cancel", u, event_id, "leaver") for u in leavers]
        + [Call("book", u, event_id, "stayer") for u in stayers]  # a second booking: 409
        + [Call("book", u, event_id, "newcomer") for u in newcomers]
        + [Call("cancel", u, event_id, "stranger") for u in strangers]  # nothing to cancel
        + [Call("status", u, event_id, "reader") for u in strangers]  # reads in the middle
    )
    result = await storm(server.base_url, calls)
    report(f"mixed: {len(calls)} cancels/books/leaves/reads", server.name, result)
    result.assert_no_server_errors()

    assert result.statuses("holder") == Counter({200: 60})
    assert {a.outcome for a in result.of("holder")} <= {"reassigned", "released"}
    assert result.statuses("leaver") == Counter({200: 20})
    assert result.statuses("stayer") == Counter({409: 20})
    assert all(a.body["code"] == "already_booked" for a in result.of("stayer"))
    assert set(result.statuses("newcomer")) <= {201, 202}
    assert result.statuses("newcomer").total() == 150
    assert result.statuses("stranger") == Counter({404: 30})
    assert all(a.body["code"] == "booking_not_found" for a in result.of("stranger"))
    assert result.statuses("reader") == Counter({200: 30})
    for answer in result.of("reader"):  # every read is one committed state
        available, booked, waiting = status_counts(answer.body)
        assert 0 <= available <= tickets
        assert available + booked == tickets
        assert available == 0 or waiting == 0, f"a reader saw a free ticket and a line: {answer}"

    records = await booking_records(storm_db.url, event_id)
    rows = {r.id: r for r in records}
    acknowledged = {a.body["bookingId"] for a in result.of("newcomer")}
    assert set(rows) == before | acknowledged, "a row nobody was told about, or one missing"
    for answer in result.of("newcomer"):
        row = assert_answer_matches_row(answer, rows)
        if answer.status == 201:
            assert row.status is BookingStatus.CONFIRMED
        else:  # still in line, or promoted by one of the cancels
            assert row.status is BookingStatus.WAITLISTED or row.promoted_at is not None
    by_user = {r.user_id: r for r in records if r.user_id not in {n.id for n in newcomers}}
    for holder in holders:
        row = by_user[holder.id]
        assert row.status is BookingStatus.CANCELLED
        assert row.ended_at is not None
    for answer in result.of("leaver"):
        row = by_user[answer.call.user.id]
        if answer.outcome == "left_waiting_list":
            assert row.status is BookingStatus.LEFT
        else:  # promoted before their cancel arrived, so they gave back a ticket
            assert answer.outcome in {"reassigned", "released"}
            assert row.status is BookingStatus.CANCELLED
            assert row.promoted_at is not None

    # The ledger: every ticket and place accounted for by an answer.
    outcomes = Counter(a.outcome for a in result.answers if a.status == 200)
    booked = result.statuses("newcomer")[201]
    joined = result.statuses("newcomer")[202]
    promoted = [r for r in records if r.promoted_at is not None]
    assert len(promoted) == outcomes["reassigned"], "one promotion per 'reassigned' answer"
    gave_back = outcomes["reassigned"] + outcomes["released"]
    expected_confirmed = 60 - gave_back + outcomes["reassigned"] + booked
    expected_available = outcomes["released"] - booked
    expected_waiting = 40 + joined - outcomes["left_waiting_list"] - outcomes["reassigned"]
    checked = (await check_invariants(storm_db.url, [event_id]))[event_id]
    assert (checked.available, checked.confirmed, checked.waiting) == (
        expected_available,
        expected_confirmed,
        expected_waiting,
    )
    status = await status_of(server.base_url, people[0], event_id)
    assert status_counts(status) == (expected_available, expected_confirmed, expected_waiting)
    await assert_line_positions(server, people, event_id, records)

    # Drain: everyone holding a ticket gives it back at once. The line must be served
    # strictly in order: exactly the first min(held, waiting) places get the tickets.
    holding = [u for u in people if rows_of(records, u.id, BookingStatus.CONFIRMED)]
    line = sorted(
        (r for r in records if r.status is BookingStatus.WAITLISTED), key=lambda r: r.line_seq or 0
    )
    served = min(len(holding), len(line))
    drain = await storm(server.base_url, [Call("cancel", u, event_id, "drain") for u in holding])
    report(f"drain: {len(holding)} cancels with {len(line)} waiting", server.name, drain)
    drain.assert_no_server_errors()
    assert drain.statuses() == Counter({200: len(holding)})
    # (Counters compare missing keys as zero.)
    assert Counter(a.outcome for a in drain.answers) == Counter(
        {"reassigned": served, "released": len(holding) - served}
    )
    after = {r.id: r for r in await booking_records(storm_db.url, event_id)}
    newly_promoted = [r.id for r in line if after[r.id].promoted_at is not None]
    assert newly_promoted == [r.id for r in line[:served]], "the line was not served in order"
    checked = (await check_invariants(storm_db.url, [event_id]))[event_id]
    assert (checked.confirmed, checked.waiting) == (served, len(line) - served)
    await assert_line_positions(server, people, event_id, list(after.values()))
    assert server.new_log().count("Traceback") == 0


async def test_tickets_given_back_while_as_many_people_book(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    """Every holder gives their ticket back while as many newcomers book, all at once.

    Aimed at the gap between a booking's "take a free ticket" and "join the line": a ticket
    freed in between must be taken, never left free while its booker waits. The line stays
    short here, so cancels keep freeing tickets and that gap keeps opening. Whatever the
    order, the end is exact: a newcomer can only be waiting if no ticket is free, which
    with as many tickets as newcomers means nobody waits and every newcomer holds one.
    """
    tickets = 80
    people = await api_users(storm_db.url, server_tokens, 2 * tickets, prefix="churn")
    holders, newcomers = people[:tickets], people[tickets:]
    event_id = await new_event(server, people[0], tickets)
    setup = await storm(server.base_url, [Call("book", u, event_id, "holder") for u in holders])
    assert setup.statuses() == Counter({201: tickets})

    calls = [Call("cancel", u, event_id, "holder") for u in holders] + [
        Call("book", u, event_id, "newcomer") for u in newcomers
    ]
    result = await storm(server.base_url, calls)
    report(f"{tickets} give back while {tickets} book", server.name, result)
    result.assert_no_server_errors()
    assert result.statuses("holder") == Counter({200: tickets})
    assert set(result.statuses("newcomer")) <= {201, 202}

    records = await booking_records(storm_db.url, event_id)
    rows = {r.id: r for r in records}
    for answer in result.of("newcomer"):
        row = assert_answer_matches_row(answer, rows)
        assert row.status is BookingStatus.CONFIRMED, "a newcomer was left waiting"
    outcomes = Counter(a.outcome for a in result.of("holder"))
    assert outcomes["reassigned"] == result.statuses("newcomer")[202]
    # check_invariants also replays the history: nobody took a free ticket past the line.
    checked = (await check_invariants(storm_db.url, [event_id]))[event_id]
    assert (checked.available, checked.confirmed, checked.waiting) == (0, tickets, 0)
    status = await status_of(server.base_url, people[0], event_id)
    assert status_counts(status) == (0, tickets, 0)
    assert server.new_log().count("Traceback") == 0


async def test_everyone_books_several_events_at_once(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    """The same users on three events at once: transactions of different events share user
    rows (foreign-key checks) and neighbouring ranges of the booking keys, but must never
    wait on each other in a cycle or mix up their counts."""
    people, tickets, n_events = 120, 30, 3
    users = await api_users(storm_db.url, server_tokens, people, prefix="multi")
    event_ids = [await new_event(server, users[0], tickets) for _ in range(n_events)]

    calls = [Call("book", u, e, f"event{e}") for u in users for e in event_ids]
    result = await storm(server.base_url, calls)
    report(f"{people} users x {n_events} events at once", server.name, result)
    result.assert_no_server_errors()
    records = await booking_records(storm_db.url)
    rows = {r.id: r for r in records}
    assert len(rows) == people * n_events
    for event_id in event_ids:
        mine = result.of(f"event{event_id}")
        assert Counter(a.status for a in mine) == Counter({201: tickets, 202: people - tickets})
        places = sorted(a.body["position"] for a in mine if a.status == 202)
        assert places == list(range(1, people - tickets + 1))
        for answer in mine:
            assert_answer_matches_row(answer, rows)
    reports = await check_invariants(storm_db.url, event_ids)
    assert all((r.confirmed, r.waiting) == (tickets, people - tickets) for r in reports.values())
    assert server.new_log().count("Traceback") == 0


def rows_of(records: list[BookingRecord], user_id: int, status: BookingStatus) -> bool:
    return any(r.user_id == user_id and r.status is status for r in records)


async def test_one_user_fires_several_requests_at_once(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    people, tickets, tries = 40, 15, 5
    users = await api_users(storm_db.url, server_tokens, people, prefix="eager")
    event_id = await new_event(server, users[0], tickets)

    books = await storm(
        server.base_url, [Call("book", u, event_id, "eager") for u in users for _ in range(tries)]
    )
    report(f"{people} users x {tries} bookings at once", server.name, books)
    books.assert_no_server_errors()
    for user in users:
        mine = Counter(a.status for a in books.answers if a.call.user == user)
        assert mine[409] == tries - 1, f"user {user.id}: {mine}"
        assert mine[201] + mine[202] == 1, f"user {user.id}: {mine}"
    assert books.statuses() == Counter(
        {201: tickets, 202: people - tickets, 409: people * (tries - 1)}
    )
    positions = sorted(a.body["position"] for a in books.answers if a.status == 202)
    assert positions == list(range(1, people - tickets + 1))
    records = await booking_records(storm_db.url, event_id)
    assert sorted(r.user_id for r in records) == sorted(u.id for u in users)
    rows = {r.id: r for r in records}
    for answer in books.answers:
        if answer.status != 409:
            assert_answer_matches_row(answer, rows)
    await assert_line_positions(server, users, event_id, records)
    await check_invariants(storm_db.url, [event_id])

    # Now everyone cancels three times at once: one 200 each, the rest find nothing.
    cancels = await storm(
        server.base_url, [Call("cancel", u, event_id, "eager") for u in users for _ in range(3)]
    )
    report(f"{people} users x 3 cancels at once", server.name, cancels)
    cancels.assert_no_server_errors()
    for user in users:
        mine = Counter(a.status for a in cancels.answers if a.call.user == user)
        assert mine == Counter({200: 1, 404: 2}), f"user {user.id}: {mine}"
    outcomes = Counter(a.outcome for a in cancels.answers if a.status == 200)
    assert outcomes["released"] == tickets, "every ticket ends up back in the pool"
    records = await booking_records(storm_db.url, event_id)
    assert all(r.active is None and r.ended_at is not None for r in records)
    assert sum(r.promoted_at is not None for r in records) == outcomes["reassigned"]
    status = await status_of(server.base_url, users[0], event_id)
    assert status_counts(status) == (tickets, 0, 0)
    await check_invariants(storm_db.url, [event_id])
    assert server.new_log().count("Traceback") == 0
