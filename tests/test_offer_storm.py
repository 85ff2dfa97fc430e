"""A storm of offers against a real `booking-service serve --workers 2` on MariaDB: holders give
tickets back, the owner adds tickets, people in line accept, decline or let their two-second
offers lapse while both workers sweep, and one worker is killed outright halfway through.
Afterwards: every answer matches the history, no lapsed offer lingers, and check_invariants
holds (no ticket offered twice or lost, every promotion and offer in line order)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import Booking, BookingStatus, HistoryAction
from tests.support.api import TokenFactory
from tests.support.checks import OfferAnswer, check_offer_answers
from tests.support.databases import create_mariadb_database
from tests.support.environment import require_mariadb
from tests.support.servers import serve
from tests.support.settings import TEST_SECRET, make_settings
from tests.support.timing import eventually

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

USERS = 60
EVENTS = 2
TICKETS = 5
OFFER_SECONDS = 2
STORM_SECONDS = 8.0
SWEEP_INTERVAL = 0.2
# Chance, each time they look, that a ticket holder gives it back or someone leaves the line.
GIVE_UP = {"confirmed": 0.15, "waitlisted": 0.02}


@dataclass
class Storm:
    rng: random.Random
    client: httpx.AsyncClient
    tokens: TokenFactory
    events: list[int]
    ends_at: float
    answers: list[OfferAnswer] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lost_connections: int = 0

    async def call(self, method: str, path: str, user: int, **kwargs: Any) -> httpx.Response | None:
        try:
            response = await self.client.request(
                method, path, headers=self.tokens.headers(user), **kwargs
            )
        except httpx.TransportError:  # the worker it went to was killed
            self.lost_connections += 1
            return None
        self.statuses[response.status_code] += 1
        return response

    async def person(self, user: int) -> None:
        """Looks at their bookings now and then and acts on what they hold."""
        while time.monotonic() < self.ends_at:
            response = await self.call("GET", "/me/bookings", user)
            for item in [] if response is None else response.json()["items"]:
                await self.act(user, item)
            await asyncio.sleep(self.rng.uniform(0.1, 0.3))

    async def act(self, user: int, item: dict[str, Any]) -> None:
        event_id, roll = item["eventId"], self.rng.random()
        body = {"json": {"eventId": event_id}}
        if item["status"] == "offered":
            if roll < 0.3:
                return  # let it lapse
            # Answer somewhere around the deadline: most on time, some late.
            await asyncio.sleep(self.rng.uniform(0, OFFER_SECONDS * 1.1))
            path = "/offers/accept" if roll < 0.8 else "/offers/decline"
            response = await self.call("POST", path, user, **body)
            if response is not None:
                self.answers.append(OfferAnswer(user, event_id, path, response.status_code))
        elif roll < GIVE_UP[item["status"]]:
            await self.call("POST", "/cancel", user, **body)

    async def organizer(self, owner: int) -> None:
        while time.monotonic() < self.ends_at:
            await asyncio.sleep(self.rng.uniform(0.8, 1.5))
            event_id = self.rng.choice(self.events)
            event = await self.call("GET", f"/events/{event_id}", owner)
            if event is not None:
                tickets = event.json()["capacity"] + 1
                await self.call("PATCH", f"/events/{event_id}", owner, json={"tickets": tickets})


def worker_pids(server_pid: int) -> list[int]:
    """The uvicorn worker processes of a server we started (not multiprocessing's helper)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [
        pid
        for pid in map(int, children)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


async def lingering_lapsed_offers(url: str, grace: timedelta) -> int:
    """Open offers whose deadline passed more than `grace` ago."""
    async with connect(url) as engine, engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(Booking)
            .where(
                Booking.status == BookingStatus.OFFERED,
                Booking.offer_expires_at < datetime.now(UTC) - grace,
            )
        )
        return int(count or 0)


async def test_offers_lapsing_while_people_answer_on_two_workers(tmp_path: Path) -> None:
    await require_mariadb()
    rng = random.Random(8)
    async with create_mariadb_database() as database:
        url = database.url
        users = await create_users(url, USERS, prefix="storm")
        owner, crowd = users[0], users[1:]
        tokens = TokenFactory(make_settings(url))
        env = {
            "DATABASE_URL": url,
            "JWT_SECRET": TEST_SECRET,
            "RATE_LIMIT_ENABLED": "false",
            "OFFER_SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL),
        }
        with serve(tmp_path, workers=2, **env) as server:
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(
                base_url=server.base_url, timeout=30, limits=limits
            ) as client:
                storm = Storm(rng, client, tokens, [], 0.0)
                for i in range(EVENTS):
                    created = await storm.call(
                        "POST",
                        "/initialize",
                        owner,
                        json={
                            "name": f"Storm {i}",
                            "tickets": TICKETS,
                            "waitlist_mode": "offer",
                            "offer_seconds": OFFER_SECONDS,
                        },
                    )
                    assert created is not None
                    storm.events.append(created.json()["eventId"])
                for event_id in storm.events:
                    await asyncio.gather(
                        *(storm.call("POST", "/book", u, json={"eventId": event_id}) for u in crowd)
                    )
                assert storm.statuses == {
                    201: EVENTS + EVENTS * TICKETS,
                    202: EVENTS * (len(crowd) - TICKETS),
                }

                storm.ends_at = time.monotonic() + STORM_SECONDS

                async def kill_a_worker() -> int:
                    await asyncio.sleep(STORM_SECONDS / 2)
                    victim = worker_pids(server.process.pid)[0]
                    os.kill(victim, signal.SIGKILL)
                    return victim

                _, _, victim = await asyncio.gather(
                    asyncio.gather(*(storm.person(u) for u in crowd)),
                    storm.organizer(owner),
                    kill_a_worker(),
                )
            assert victim not in worker_pids(server.process.pid)

            # The surviving and restarted workers keep expiring lapsed offers.
            async def no_offer_lingers() -> bool:
                grace = timedelta(seconds=SWEEP_INTERVAL * 5 + 1)
                return await lingering_lapsed_offers(url, grace) == 0

            await eventually(no_offer_lingers, timeout=30, what="lapsed offers to be swept")
            reports = await check_invariants(url, storm.events)

        # Nothing failed on the server; every answer to an offer is the one the history shows.
        assert not [status for status in storm.statuses if status >= 500], storm.statuses
        outcomes = await check_offer_answers(url, storm.answers)
        answered = Counter((answer.path, answer.status) for answer in storm.answers)
        print(
            f"\nstorm: {sum(storm.statuses.values())} requests {dict(storm.statuses)}, "
            f"{storm.lost_connections} lost with the killed worker; offers ended "
            f"{dict(outcomes)}; answers {dict(answered)}; "
            f"final {[(r.capacity, r.confirmed, r.offered, r.waiting) for r in reports.values()]}"
        )
        assert outcomes[HistoryAction.EXPIRED] > 0
        assert outcomes[HistoryAction.ACCEPTED] + outcomes[HistoryAction.DECLINED] > 0
