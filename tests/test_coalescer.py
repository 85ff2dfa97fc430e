"""Grouped bookings: many concurrent bookings of one event share transactions, and each caller
still gets exactly the answer a one-by-one booking would have given."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import update

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import User
from booking_service.models.types import utcnow
from tests.support.api import TokenFactory, book, cancel, create_event, fill_event, my_bookings
from tests.support.databases import Database

Send = Callable[[httpx.AsyncClient, dict[str, str], int], Awaitable[httpx.Response]]


async def _all_at_once(
    send: Send,
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    user_ids: list[int],
    event_id: int,
) -> list[httpx.Response]:
    """`send` (book or cancel) for every user at once."""
    return await asyncio.gather(*(send(client, tokens.headers(u), event_id) for u in user_ids))


async def _book_all(
    client: httpx.AsyncClient, tokens: TokenFactory, user_ids: list[int], event_id: int
) -> list[httpx.Response]:
    return await _all_at_once(book, client, tokens, user_ids, event_id)


async def test_a_rush_is_served_in_groups_without_overselling(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    users = await create_users(database.url, 300)
    event_id = await create_event(client, tokens.headers(users[0]), tickets=40)
    stats = app_state(app).coalescer.stats
    before = (stats.transactions, stats.requests)

    responses = await _book_all(client, tokens, users, event_id)

    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 40, 202: 260}
    positions = sorted(r.json()["position"] for r in responses if r.status_code == 202)
    assert positions == list(range(1, 261))
    booking_ids = [r.json()["bookingId"] for r in responses]
    assert len(set(booking_ids)) == 300
    transactions = stats.transactions - before[0]
    assert stats.requests - before[1] == 300
    assert transactions < 300, "concurrent bookings of one event must share transactions"
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].waiting) == (40, 260)


async def test_places_given_in_a_group_are_the_real_line(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    users = await create_users(database.url, 30)
    event_id = await create_event(client, tokens.headers(users[0]), tickets=1)
    responses = await _book_all(client, tokens, users, event_id)
    told = {
        user: r.json()["position"]
        for user, r in zip(users, responses, strict=True)
        if r.status_code == 202
    }
    assert sorted(told.values()) == list(range(1, 30))
    for user, position in told.items():
        mine = await my_bookings(client, tokens.headers(user))
        assert mine[0]["position"] == position
    # The ticket holder cancels: whoever was told "position 1" gets the ticket.
    [holder] = [u for u, r in zip(users, responses, strict=True) if r.status_code == 201]
    await cancel(client, tokens.headers(holder), event_id)
    first = next(user for user, position in told.items() if position == 1)
    mine = await my_bookings(client, tokens.headers(first))
    assert mine[0]["status"] == "confirmed"
    await check_invariants(database.url, [event_id])


async def test_the_same_user_many_times_at_once_gets_one_claim(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    users = await create_users(database.url, 10)
    event_id = await create_event(client, tokens.headers(users[0]), tickets=3)
    rush = [users[1]] * 6 + users[2:]
    responses = await _book_all(client, tokens, rush, event_id)
    mine = sorted(r.status_code for r in responses[:6])
    assert mine[0] in (201, 202)  # a ticket or a place, depending on who came first
    assert mine[1:] == [409] * 5
    assert all(r.json()["code"] == "already_booked" for r in responses[:6] if r.status_code == 409)
    await check_invariants(database.url, [event_id])


async def test_holders_in_a_group_get_409_and_unknown_events_404(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    users = await create_users(database.url, 12)
    event_id = await create_event(client, tokens.headers(users[0]), tickets=5)
    first = await _book_all(client, tokens, users[:4], event_id)
    assert [r.status_code for r in first] == [201] * 4
    second = await _book_all(client, tokens, users, event_id)
    codes = [r.status_code for r in second]
    assert codes[:4] == [409] * 4
    assert Counter(codes[4:]) == {201: 1, 202: 7}
    missing = await _book_all(client, tokens, users, 999_999)
    assert {r.status_code for r in missing} == {404}
    await check_invariants(database.url, [event_id])


async def test_a_group_costs_the_same_statements_whatever_its_size(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    """The flash-sale path stays set-based: claims and their history go in multi-row INSERTs,
    so a transaction's statements do not grow with the bookings it serves."""
    users = await create_users(database.url, 200)
    event_id = await create_event(client, tokens.headers(users[0]), tickets=50)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's explicit BEGIN IMMEDIATE
            statements.append(statement)

    stats = app_state(app).coalescer.stats
    before = stats.transactions
    sqlalchemy_event.listen(app_state(app).engine.sync_engine, "before_cursor_execute", count)
    try:
        responses = await _book_all(client, tokens, users, event_id)
    finally:
        sqlalchemy_event.remove(app_state(app).engine.sync_engine, "before_cursor_execute", count)
    assert Counter(r.status_code for r in responses) == {201: 50, 202: 150}
    transactions = stats.transactions - before
    assert stats.largest_group > 10
    # Every statement of the requests, not only the groups': /book asks nothing per request.
    # A group: lock the event, lock the open accounts, holders, claims (two INSERTs in the
    # group that sells the last ticket: one for tickets, one for places in line), their ids,
    # their history, counters.
    assert len(statements) <= 8 * transactions, "\n".join(s[:70] for s in statements)
    report = await check_invariants(database.url, [event_id])
    assert report[event_id].history_entries == 200


async def test_a_closed_account_cannot_book_alone_or_in_a_group(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    """/book trusts the token alone; the booking transaction itself refuses a closed account
    (under the locks, so a closing account cannot slip a booking in), before even saying the
    event is unknown."""
    users = await create_users(database.url, 12)
    event_id = await create_event(client, tokens.headers(users[0]), tickets=5)
    closed = users[1]
    # Warm this worker's account cache first: the booking must not trust it.
    await my_bookings(client, tokens.headers(closed))
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(update(User).where(User.id == closed).values(deleted_at=utcnow()))

    alone = await book(client, tokens.headers(closed), event_id)
    assert (alone.status_code, alone.json()["code"]) == (401, "invalid_token")
    unknown = await book(client, tokens.headers(closed), 999_999)
    assert unknown.status_code == 401

    responses = await _book_all(client, tokens, [closed, *users[2:]], event_id)
    assert responses[0].status_code == 401
    assert Counter(r.status_code for r in responses[1:]) == {201: 5, 202: 5}
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].waiting) == (5, 5)


async def test_bookings_of_different_events_share_transactions(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    """No contention, many events: grouping still saves a transaction per booking, and every
    event keeps its own counters, line and answers."""
    users = await create_users(database.url, 121)
    owner, bookers = users[0], users[1:]
    event_ids = [await create_event(client, tokens.headers(owner), tickets=5) for _ in range(8)]
    stats = app_state(app).coalescer.stats
    before = (stats.transactions, stats.requests)

    # 120 users each book every event, all at once: 15 per event, 5 tickets each.
    responses = await asyncio.gather(
        *(
            book(client, tokens.headers(user), event_id)
            for user in bookers[:15]
            for event_id in event_ids
        )
    )

    assert Counter(r.status_code for r in responses) == {201: 40, 202: 80}
    assert stats.requests - before[1] == 120
    assert stats.transactions - before[0] < 120, "bookings of different events were grouped"
    by_event: dict[int, list[int]] = {event_id: [] for event_id in event_ids}
    for response in responses:
        body = response.json()
        if response.status_code == 202:
            by_event[body["eventId"]].append(body["position"])
    assert all(sorted(positions) == list(range(1, 11)) for positions in by_event.values())
    reports = await check_invariants(database.url, event_ids)
    assert all((r.confirmed, r.waiting) == (5, 10) for r in reports.values())


# Cancels share the coalescer: a rush of cancels, and cancels mixed with bookings.


async def _cancel_all(
    client: httpx.AsyncClient, tokens: TokenFactory, user_ids: list[int], event_id: int
) -> list[httpx.Response]:
    return await _all_at_once(cancel, client, tokens, user_ids, event_id)


async def _statuses(client: httpx.AsyncClient, tokens: TokenFactory, users: list[int]) -> list[str]:
    answers = [await my_bookings(client, tokens.headers(user)) for user in users]
    return [items[0]["status"] if items else "none" for items in answers]


async def _sold_out_with_line(
    client: httpx.AsyncClient, tokens: TokenFactory, users: list[int], tickets: int
) -> tuple[int, list[int], list[int]]:
    """An event whose `tickets` went to the first users, the rest in line in list order."""
    headers = [tokens.headers(user) for user in users]
    event_id = await fill_event(client, headers[0], headers, tickets)
    return event_id, users[:tickets], users[tickets:]


async def test_a_rush_of_cancels_shares_transactions_and_promotes_in_line_order(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    users = await create_users(database.url, 100)
    event_id, holders, line = await _sold_out_with_line(client, tokens, users, tickets=40)
    stats = app_state(app).coalescer.stats
    before = (stats.transactions, stats.requests)

    responses = await _cancel_all(client, tokens, holders, event_id)

    assert {r.status_code for r in responses} == {200}
    assert {r.json()["outcome"] for r in responses} == {"reassigned"}
    assert stats.requests - before[1] == 40
    assert stats.transactions - before[0] < 40, "concurrent cancels of one event were grouped"
    # The first 40 in line hold the tickets now; the other 20 still wait, in the same order.
    assert await _statuses(client, tokens, line) == ["confirmed"] * 40 + ["waitlisted"] * 20
    positions = [
        (await my_bookings(client, tokens.headers(user)))[0]["position"] for user in line[40:]
    ]
    assert positions == list(range(1, 21))
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].waiting) == (40, 20)


async def test_cancels_leaves_and_bookings_at_once_keep_the_line_first(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    """Tickets given back go to the head of the line, never to a newcomer; people leaving from
    the back of the line change nothing ahead of them."""
    users = await create_users(database.url, 45)
    event_id, holders, line = await _sold_out_with_line(client, tokens, users[:40], tickets=20)
    newcomers = users[40:]
    cancelling, leaving = holders[:10], line[-5:]

    responses = await asyncio.gather(
        *(
            send(client, tokens.headers(user), event_id)
            for send, user in [
                *((cancel, u) for u in cancelling),
                *((cancel, u) for u in leaving),
                *((book, u) for u in newcomers),
            ]
        )
    )

    outcomes = [r.json().get("outcome") for r in responses[:15]]
    assert outcomes == ["reassigned"] * 10 + ["left_waiting_list"] * 5
    assert [r.status_code for r in responses[15:]] == [202] * 5
    assert await _statuses(client, tokens, line) == (
        ["confirmed"] * 10 + ["waitlisted"] * 5 + ["none"] * 5
    )
    assert await _statuses(client, tokens, cancelling) == ["none"] * 10
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].waiting) == (20, 10)


async def test_one_user_cancelling_and_booking_at_once_gets_answers_that_agree(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    """Both requests in flight together may be served in either order, but each answer must
    match what the database holds afterwards."""
    users = await create_users(database.url, 20)
    event_id, holders, _line = await _sold_out_with_line(client, tokens, users, tickets=10)
    pairs = await asyncio.gather(
        *(
            asyncio.gather(
                cancel(client, tokens.headers(u), event_id),
                book(client, tokens.headers(u), event_id),
            )
            for u in holders
        )
    )
    for user, (cancelled, booked) in zip(holders, pairs, strict=True):
        assert cancelled.status_code == 200, cancelled.text
        [status] = await _statuses(client, tokens, [user])
        if booked.status_code == 409:  # booked first, while still holding the ticket
            assert status == "none"
        else:  # cancelled first: the ticket went to the line, so this is a place in line
            assert booked.status_code == 202, booked.text
            assert status == "waitlisted"
    await check_invariants(database.url, [event_id])


async def test_cancels_in_a_group_cost_the_same_statements_whatever_their_number(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    users = await create_users(database.url, 300)
    event_id, holders, _line = await _sold_out_with_line(client, tokens, users, tickets=150)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith(("INSERT", "UPDATE", "SELECT")):
            statements.append(statement)

    stats = app_state(app).coalescer.stats
    before = stats.transactions
    engine = app_state(app).engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", count)
    try:
        responses = await _cancel_all(client, tokens, holders, event_id)
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", count)
    assert {r.json()["outcome"] for r in responses} == {"reassigned"}
    transactions = stats.transactions - before
    assert stats.largest_group > 10
    # Per request: the account check of the JWT guard (one SELECT, when not cached). Per
    # transaction: lock the event, lock the claims, end them, lock the first in line, promote
    # them, the counters, the history, the webhook messages (when configured).
    assert len(statements) <= 150 + 10 * transactions, "\n".join(s[:70] for s in statements)
    await check_invariants(database.url, [event_id])


async def test_grouped_cancels_in_offer_mode_offer_to_the_head_of_the_line(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    users = await create_users(database.url, 31)
    owner, holders, line = users[0], users[1:11], users[11:]
    bookers = [tokens.headers(user) for user in holders + line]
    event_id = await fill_event(
        client, tokens.headers(owner), bookers, 10, waitlist_mode="offer", offer_seconds=600
    )

    responses = await _cancel_all(client, tokens, holders[:6], event_id)

    assert {r.json()["outcome"] for r in responses} == {"offered"}
    assert await _statuses(client, tokens, line) == ["offered"] * 6 + ["waitlisted"] * 14
    # Those offered turn them down at once, together: the next six in line get the offers.
    declined = await _cancel_all(client, tokens, line[:6], event_id)
    assert {r.json()["outcome"] for r in declined} == {"offered"}
    assert await _statuses(client, tokens, line) == (
        ["none"] * 6 + ["offered"] * 6 + ["waitlisted"] * 8
    )
    report = await check_invariants(database.url, [event_id])
    assert report[event_id].waiting == 8


async def test_cancels_in_a_group_for_nothing_or_no_event_get_404_and_change_nothing(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    users = await create_users(database.url, 20)
    event_id, holders, line = await _sold_out_with_line(client, tokens, users[:10], tickets=5)
    strangers = users[10:]
    responses = await asyncio.gather(
        *(
            cancel(client, tokens.headers(user), target)
            for user, target in [
                *((u, event_id) for u in strangers),
                *((u, 999_999) for u in holders),
                *((u, event_id) for u in holders[:2]),
            ]
        )
    )
    codes = [r.status_code for r in responses]
    assert codes == [404] * 10 + [404] * 5 + [200] * 2
    assert {r.json()["code"] for r in responses[:10]} == {"booking_not_found"}
    assert {r.json()["code"] for r in responses[10:15]} == {"event_not_found"}
    assert await _statuses(client, tokens, line) == ["confirmed"] * 2 + ["waitlisted"] * 3
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].waiting) == (5, 3)
