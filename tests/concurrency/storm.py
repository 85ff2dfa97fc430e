"""Firing many HTTP requests at a running server at once, and reading the answers back."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from tests.support.api import ApiUser, event_status, my_bookings

Action = Literal["book", "cancel", "status", "transfer", "check_in", "cancel_event"]


@dataclass(frozen=True)
class Call:
    action: Action
    user: ApiUser
    event_id: int
    role: str  # what this caller is in the storm: "holder", "newcomer", ...
    # More of the body: `toUsername` of a transfer, `code` of a check-in.
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    call: Call
    status: int
    body: dict[str, Any]
    retry_after: str | None

    @property
    def outcome(self) -> str | None:
        value = self.body.get("outcome")
        return value if isinstance(value, str) else None


@dataclass
class StormResult:
    answers: list[Answer]
    seconds: float

    def of(self, role: str) -> list[Answer]:
        return [a for a in self.answers if a.call.role == role]

    def statuses(self, role: str | None = None) -> Counter[int]:
        answers = self.answers if role is None else self.of(role)
        return Counter(a.status for a in answers)

    def busy(self) -> int:
        """503s with Retry-After: allowed by design only once the retries ran out."""
        return sum(1 for a in self.answers if a.status == 503 and a.retry_after)

    def assert_no_server_errors(self) -> None:
        errors = [a for a in self.answers if a.status >= 500]
        assert not errors, (
            f"{len(errors)} answers were 5xx ({self.busy()} of them 503 + Retry-After): "
            f"{[(a.status, a.body) for a in errors[:5]]}"
        )


# Building an SSL context costs milliseconds; plain-HTTP clients can all share one.
_SSL_CONTEXT = ssl.create_default_context()


def _client(base_url: str) -> httpx.AsyncClient:
    # Never a proxy, whatever the environment says: traffic stays on 127.0.0.1.
    return httpx.AsyncClient(base_url=base_url, timeout=120.0, trust_env=False, verify=_SSL_CONTEXT)


@asynccontextmanager
async def http_clients(base_url: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` independent clients, each with its own connection.

    One client per caller rather than one shared pool: httpx's pool slows down
    quadratically with hundreds of requests in flight (6 s instead of 1.6 s for 400 here),
    and separate clients are what a crowd of real users looks like to the server.
    """
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(_client(base_url)) for _ in range(count)]


@asynccontextmanager
async def http_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(base_url) as client:
        yield client


async def storm(base_url: str, calls: Sequence[Call], *, seed: int = 0) -> StormResult:
    """Send every call at once, each from its own client, and wait for all the answers.

    The calls go out in a shuffled (seeded) order: sent in list order, a block of cancels
    could all be served before the first booking arrived, and nothing would interleave.
    Answers come back in the order of `calls`.
    """
    order = list(range(len(calls)))
    random.Random(seed).shuffle(order)

    async def send(client: httpx.AsyncClient, call: Call) -> Answer:
        headers = call.user.headers
        if call.action == "status":
            response = await client.get(f"/status/{call.event_id}", headers=headers)
        elif call.action == "check_in":
            path = f"/events/{call.event_id}/check-in"
            response = await client.post(path, json=call.body, headers=headers)
        elif call.action == "cancel_event":
            response = await client.post(f"/events/{call.event_id}/cancel", headers=headers)
        elif call.action == "transfer":
            body = {"eventId": call.event_id, **(call.body or {})}
            response = await client.post("/tickets/transfer", json=body, headers=headers)
        else:
            response = await client.post(
                f"/{call.action}", json={"eventId": call.event_id}, headers=headers
            )
        retry_after = response.headers.get("retry-after")
        return Answer(call, response.status_code, response.json(), retry_after)

    async with http_clients(base_url, len(calls)) as clients:
        started = time.perf_counter()
        tasks = {i: asyncio.create_task(send(clients[i], calls[i])) for i in order}
        await asyncio.gather(*tasks.values())
        seconds = time.perf_counter() - started
    return StormResult([tasks[i].result() for i in range(len(calls))], seconds)


async def live_claims(
    base_url: str, users: Sequence[ApiUser], event_id: int
) -> dict[int, dict[str, Any]]:
    """Each user's live claim on the event from GET /me/bookings, all asked at once."""

    async def ask(client: httpx.AsyncClient, user: ApiUser) -> tuple[int, dict[str, Any] | None]:
        items = [i for i in await my_bookings(client, user.headers) if i["eventId"] == event_id]
        assert len(items) <= 1, items
        return user.id, (items[0] if items else None)

    async with http_clients(base_url, len(users)) as clients:
        found = await asyncio.gather(*map(ask, clients, users))
    return {user_id: item for user_id, item in found if item is not None}


async def status_of(base_url: str, user: ApiUser, event_id: int) -> dict[str, Any]:
    async with http_client(base_url) as client:
        return await event_status(client, user.headers, event_id)


def report(name: str, where: str, result: StormResult) -> None:
    """One line per storm in the test output (`-s` or `-rA`): size, time, answers."""
    statuses = dict(sorted(result.statuses().items()))
    print(
        f"\n[storm] {name} on {where}: {len(result.answers)} requests in "
        f"{result.seconds:.2f}s, answers {statuses}, 503 busy {result.busy()}"
    )
