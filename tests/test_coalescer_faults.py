"""Faults inside a group: every request gets the answer of what happened to it.

A group the database refuses as a whole is served again one request at a time. Triggers make
the database fail for chosen users there (an integrity error nobody foresaw; a lock conflict
that outlasts its retries): the requests served before them have committed by then, and those
after them still run. Each answer must agree with the database afterwards, as the bench
checks every answer: a 201/202 for exactly the claims that exist, an error only for requests
that changed nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import httpx
from fastapi import FastAPI

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from booking_service.models import BookingStatus
from booking_service.services.coalescer import Coalescer
from tests.faults import Fault, event_locked, failing_rows
from tests.support.api import TokenFactory, book, cancel, create_event
from tests.support.apps import http_client
from tests.support.checks import booking_records
from tests.support.databases import Database
from tests.support.timing import eventually


async def waiting_in_order(
    coalescer: Coalescer,
    first: Coroutine[Any, Any, httpx.Response],
    group: list[Coroutine[Any, Any, httpx.Response]],
) -> list[asyncio.Task[httpx.Response]]:
    """Start `first` and wait until the coalescer serves it, then start each of `group` once the
    one before it is queued. With the event locked, `first` holds the coalescer's transaction
    while the others coalescer up behind it, in this order: they are then served as one group."""
    served_before = coalescer.stats.requests
    pending = [asyncio.create_task(first)]

    async def first_is_served() -> bool:
        return coalescer.stats.requests == served_before + 1

    await eventually(first_is_served, timeout=10, what="the first request")
    for queued, request in enumerate(group, start=1):
        pending.append(asyncio.create_task(request))

        async def queued_up(expected: int = queued) -> bool:
            return len(coalescer._waiting) == expected

        await eventually(queued_up, timeout=10, what=f"{queued} requests waiting")
    return pending


async def test_a_failure_in_the_one_by_one_fallback_answers_that_request_alone(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    owner, first, *group = await create_users(database.url, 9)
    refused, busy = group[2], group[4]
    event_id = await create_event(client, tokens.headers(owner), tickets=4)
    coalescer: Coalescer = app_state(app).coalescer
    served_before = coalescer.stats.transactions

    # A 500 is an answer here, not an exception for the test.
    async with (
        http_client(app, raise_app_exceptions=False) as http,
        failing_rows(
            database,
            "refused_claim",
            table="booking",
            operation="INSERT",
            when=f"NEW.user_id = {refused}",
            fault=Fault.UNFORESEEN,
        ),
        failing_rows(
            database,
            "busy_claim",
            table="booking",
            operation="INSERT",
            when=f"NEW.user_id = {busy}",
            fault=Fault.LOCK_TIMEOUT,
        ),
    ):
        async with event_locked(database, event_id):
            pending = await waiting_in_order(
                coalescer,
                book(http, tokens.headers(first), event_id),
                [book(http, tokens.headers(user), event_id) for user in group],
            )
        responses = dict(zip([first, *group], await asyncio.gather(*pending), strict=True))
    assert coalescer.stats.transactions == served_before + 2, "the first, then the rest as a group"

    answered = {user: response.status_code for user, response in responses.items()}
    # The group's INSERT fails at `refused`'s claim, so the group is served one by one: four
    # tickets to the first four that can have them, the rest in line, and only the two
    # requests the database failed get an error, each its own.
    assert answered == {
        first: 201,
        group[0]: 201,
        group[1]: 201,
        refused: 500,
        group[3]: 201,
        busy: 503,
        group[5]: 202,
        group[6]: 202,
    }, {user: r.text for user, r in responses.items()}
    assert responses[refused].json()["code"] == "internal_error"
    assert responses[busy].json()["code"] == "busy"
    assert responses[busy].headers["retry-after"]
    assert [responses[user].json()["position"] for user in group[5:]] == [1, 2]

    # Every answer agrees with the database: the claims told 201/202 exist as told, with the
    # ids given, and the requests told an error left nothing behind.
    claims = {r.user_id: r for r in await booking_records(database.url, event_id)}
    told = {
        user: (response.json()["bookingId"], response.status_code)
        for user, response in responses.items()
        if response.status_code in (201, 202)
    }
    statuses = {201: BookingStatus.CONFIRMED, 202: BookingStatus.WAITLISTED}
    assert {user: (c.id, c.status) for user, c in claims.items()} == {
        user: (booking_id, statuses[status]) for user, (booking_id, status) in told.items()
    }
    report = await check_invariants(database.url, [event_id])
    assert (report[event_id].confirmed, report[event_id].waiting) == (4, 2)


async def test_a_failed_repeat_after_the_group_committed_answers_that_request_alone(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    """A user's second request in a group runs alone once the group has committed: its
    failure is its own, and the group's bookings are answered as booked."""
    owner, first, one, two, repeater = await create_users(database.url, 5)
    event_id = await create_event(client, tokens.headers(owner), tickets=10)
    coalescer: Coalescer = app_state(app).coalescer
    served_before = coalescer.stats.transactions

    async with (
        http_client(app, raise_app_exceptions=False) as http,
        failing_rows(
            database,
            "refused_cancel",
            table="booking",
            operation="UPDATE",
            when=f"NEW.user_id = {repeater} AND NEW.status = 'cancelled'",
            fault=Fault.UNFORESEEN,
        ),
    ):
        async with event_locked(database, event_id):
            pending = await waiting_in_order(
                coalescer,
                book(http, tokens.headers(first), event_id),
                [
                    book(http, tokens.headers(one), event_id),
                    book(http, tokens.headers(two), event_id),
                    book(http, tokens.headers(repeater), event_id),
                    cancel(http, tokens.headers(repeater), event_id),
                ],
            )
        answers = await asyncio.gather(*pending)
    assert coalescer.stats.transactions == served_before + 2, "the first, then the rest as a group"

    assert [a.status_code for a in answers] == [201, 201, 201, 201, 500], [a.text for a in answers]
    claims = {r.user_id: r for r in await booking_records(database.url, event_id)}
    told = {
        user: answer.json()["bookingId"]
        for user, answer in zip([first, one, two, repeater], answers, strict=False)
    }
    assert {user: (c.id, c.status) for user, c in claims.items()} == {
        user: (booking_id, BookingStatus.CONFIRMED) for user, booking_id in told.items()
    }
    report = await check_invariants(database.url, [event_id])
    assert report[event_id].confirmed == 4


async def test_a_group_failed_by_one_request_serves_the_others_one_by_one(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    """Not only an integrity error: any error the group's transaction did not foresee may
    concern one request alone, so the group is served again one by one, and only that
    request is answered with it."""
    owner, first, *group = await create_users(database.url, 6)
    failing = group[1]
    event_id = await create_event(client, tokens.headers(owner), tickets=10)
    coalescer: Coalescer = app_state(app).coalescer
    served_before = coalescer.stats.transactions

    async with (
        http_client(app, raise_app_exceptions=False) as http,
        failing_rows(
            database,
            "unknown_claim_error",
            table="booking",
            operation="INSERT",
            when=f"NEW.user_id = {failing}",
            fault=Fault.UNKNOWN,
        ),
    ):
        async with event_locked(database, event_id):
            pending = await waiting_in_order(
                coalescer,
                book(http, tokens.headers(first), event_id),
                [book(http, tokens.headers(user), event_id) for user in group],
            )
        answers = dict(zip([first, *group], await asyncio.gather(*pending), strict=True))
    assert coalescer.stats.transactions == served_before + 2, "the first, then the rest as a group"

    assert {user: a.status_code for user, a in answers.items()} == {
        first: 201,
        group[0]: 201,
        failing: 500,
        group[2]: 201,
        group[3]: 201,
    }
    claims = {r.user_id: r.id for r in await booking_records(database.url, event_id)}
    assert claims == {
        user: a.json()["bookingId"] for user, a in answers.items() if a.status_code == 201
    }
    await check_invariants(database.url, [event_id])
