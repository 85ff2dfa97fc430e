"""Offers lapsing while their holders answer: accepts and declines land on both sides of the
deadline while sweeps run again and again and others leave the line. Each offer ends exactly
one way, each answer says which, and no ticket is offered twice or lost."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from tests.support.api import TokenFactory, cancel, event_status, fill_event, my_bookings
from tests.support.checks import OfferAnswer, check_offer_answers
from tests.support.databases import Database
from tests.support.timing import eventually

OFFERS = 12


async def test_answers_racing_the_deadline_and_the_sweeps(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    rng = random.Random(20261201)
    users = await create_users(database.url, OFFERS + 10)
    owner, holder, line = users[0], users[1], users[2:]
    bookers = [tokens.headers(user) for user in [holder, *line]]
    event_id = await fill_event(
        client, tokens.headers(owner), bookers, 1, waitlist_mode="offer", offer_seconds=1
    )
    grown = await client.patch(
        f"/events/{event_id}", json={"tickets": 1 + OFFERS}, headers=tokens.headers(owner)
    )
    assert grown.json()["offered_tickets"] == OFFERS
    offered, waiting = line[:OFFERS], line[OFFERS:]
    mine = await my_bookings(client, tokens.headers(offered[0]))
    deadline = datetime.fromisoformat(mine[0]["offer_expires_at"])

    async def answer(user: int) -> OfferAnswer:
        # Somewhere from 0.3 s before the deadline to 0.3 s after it.
        moment = (deadline - datetime.now(UTC)).total_seconds() + rng.uniform(-0.3, 0.3)
        await asyncio.sleep(max(0.0, moment))
        path = "/offers/accept" if rng.random() < 0.7 else "/offers/decline"
        response = await client.post(path, json={"eventId": event_id}, headers=tokens.headers(user))
        return OfferAnswer(user, event_id, path, response.status_code)

    async def sweep_until_past_deadline() -> None:
        while (datetime.now(UTC) - deadline).total_seconds() < 0.5:
            await app_state(app).offer_sweeper.sweep()
            await asyncio.sleep(0.02)

    async def leave(user: int) -> int:
        await asyncio.sleep(rng.uniform(0, 1.2))
        response = await cancel(client, tokens.headers(user), event_id)
        return response.status_code

    results = await asyncio.gather(
        asyncio.gather(*(answer(user) for user in offered)),
        sweep_until_past_deadline(),
        asyncio.gather(*(leave(user) for user in waiting[:4]), leave(holder)),
    )
    answers, _, left = results
    assert set(left) == {200}

    async def every_offer_is_settled() -> bool:
        # Offers the race handed on to the rest of the line lapse in their turn.
        await app_state(app).offer_sweeper.sweep()
        status = await event_status(client, tokens.headers(owner), event_id)
        return bool(status["offered_tickets"] == 0)

    await eventually(every_offer_is_settled, what="the offers handed on to lapse")

    # Each answer matches what the history says became of that offer.
    await check_offer_answers(database.url, answers)
    report = await check_invariants(database.url, [event_id])
    assert report[event_id].offered == 0  # everything offered was answered or has lapsed
