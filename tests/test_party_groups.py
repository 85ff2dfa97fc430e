"""Parties on the grouped path: a rush of mixed party sizes shares transactions, set-based, and
each caller gets the answer its place in arrival order gives it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event as sqlalchemy_event

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from tests.support.api import TokenFactory, book, cancel, create_event, event_status
from tests.support.databases import Database


def _size(index: int) -> int:
    return 1 + index % 3


async def test_a_rush_of_parties_is_served_in_groups_set_based(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    users = await create_users(database.url, 150)
    event_id = await create_event(client, tokens.headers(users[0]), 100, max_per_user=3)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):
            statements.append(statement)

    stats = app_state(app).coalescer.stats
    before = stats.transactions
    engine = app_state(app).engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", count)
    try:
        responses = await asyncio.gather(
            *(book(client, tokens.headers(u), event_id, _size(i)) for i, u in enumerate(users))
        )
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", count)
    transactions = stats.transactions - before
    assert transactions < len(users), "parties must share transactions too"
    assert len(statements) <= 8 * transactions, "\n".join(s[:70] for s in statements)
    booked = sum(r.json()["quantity"] for r in responses if r.status_code == 201)
    assert all(r.status_code in (201, 202) for r in responses)
    assert Counter(r.json()["quantity"] for r in responses) == {1: 50, 2: 50, 3: 50}
    positions = sorted(r.json()["position"] for r in responses if r.status_code == 202)
    assert positions == list(range(1, len(positions) + 1))
    status = await event_status(client, tokens.headers(users[0]), event_id)
    assert status["total_ticket_booked"] == booked <= 100
    # The replay checks that nobody booked while an entry waited (no newcomer passes the line).
    report = await check_invariants(database.url, [event_id])
    assert report[event_id].confirmed == booked


async def test_grouped_partial_and_whole_cancels_serve_whole_parties_in_order(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    users = await create_users(database.url, 41)
    owner, holders, line = users[0], users[1:21], users[21:]
    event_id = await create_event(client, tokens.headers(owner), 40, max_per_user=2)
    for user in holders:
        assert (await book(client, tokens.headers(user), event_id, 2)).status_code == 201
    for user in line:
        assert (await book(client, tokens.headers(user), event_id, 2)).status_code == 202
    # Half give one ticket back, half give both, all at once.
    answers = await asyncio.gather(
        *(
            cancel(client, tokens.headers(u), event_id, 1 if i % 2 else None)
            for i, u in enumerate(holders)
        )
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sum(a.json()["released_tickets"] for a in answers) == 30
    status = await event_status(client, tokens.headers(owner), event_id)
    # 30 tickets freed: the first 15 parties of two served whole, none left over.
    assert (status["available_tickets"], status["waiting_list_count"]) == (0, 5)
    assert status["total_ticket_booked"] == 40
    await check_invariants(database.url, [event_id])
