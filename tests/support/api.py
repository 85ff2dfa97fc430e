"""Acting through the API: users with tokens to act as them, and the calls the tests make."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from booking_service.bench.seed import create_users
from booking_service.config import Settings
from booking_service.security import TokenCodec

# The header on an answer replayed for a retried Idempotency-Key.
REPLAYED = "idempotent-replayed"


class TokenFactory:
    """Mints valid tokens for users created straight in the database."""

    def __init__(self, settings: Settings) -> None:
        self.codec = TokenCodec.from_settings(settings)

    def token(self, user_id: int, username: str = "someone") -> str:
        return self.codec.issue(user_id, username)

    def headers(self, user_id: int, username: str = "someone") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, username)}"}


@dataclass(frozen=True)
class ApiUser:
    """A user made straight in the database, with a token to act as them."""

    id: int
    headers: dict[str, str]


async def api_users(
    url: str, tokens: TokenFactory, count: int, prefix: str = "user"
) -> list[ApiUser]:
    """`count` users created in bulk, each with an Authorization header (no HTTP, no hashing)."""
    ids = await create_users(url, count, prefix)
    return [
        ApiUser(user_id, tokens.headers(user_id, f"{prefix}{i:06d}"))
        for i, user_id in enumerate(ids)
    ]


async def register_and_login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Register through the API and return the Authorization header for that user."""
    response = await client.post(
        "/register", json={"username": username, "password": "secret-pw-1"}
    )
    assert response.status_code == 201, response.text
    response = await client.post("/login", json={"username": username, "password": "secret-pw-1"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def create_event(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tickets: int,
    name: str = "Concert",
    **fields: Any,
) -> int:
    """Create an event through the API; `fields` adds e.g. waitlist_mode="offer"."""
    response = await client.post(
        "/initialize", json={"name": name, "tickets": tickets, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    event_id: int = response.json()["eventId"]
    return event_id


def _party_body(event_id: int, quantity: int | None) -> dict[str, int]:
    """A booking or cancel body; `quantity` only when given, as the original clients send it."""
    return {"eventId": event_id} | ({} if quantity is None else {"quantity": quantity})


async def book(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: int, quantity: int | None = None
) -> httpx.Response:
    return await client.post("/book", json=_party_body(event_id, quantity), headers=headers)


async def cancel(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: int, quantity: int | None = None
) -> httpx.Response:
    return await client.post("/cancel", json=_party_body(event_id, quantity), headers=headers)


async def event_status(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: int
) -> dict[str, Any]:
    response = await client.get(f"/status/{event_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def fill_event(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    booker_headers: Sequence[dict[str, str]],
    tickets: int,
    name: str = "Concert",
    **fields: Any,
) -> int:
    """Create an event (see create_event) and book it for each of `booker_headers`, one by one
    in that order: asserts that the first `tickets` get a ticket (201) and the others a place
    in line (202), in that order."""
    event_id = await create_event(client, owner_headers, tickets, name, **fields)
    for number, headers in enumerate(booker_headers):
        response = await book(client, headers, event_id)
        assert response.status_code == (201 if number < tickets else 202), response.text
    return event_id


def status_counts(status: dict[str, Any]) -> tuple[int, int, int]:
    """(available, booked, waiting) from a /status answer."""
    return (
        status["available_tickets"],
        status["total_ticket_booked"],
        status["waiting_list_count"],
    )


async def my_bookings(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/me/bookings", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def assert_one_answer(answers: Sequence[httpx.Response]) -> httpx.Response:
    """For one request sent many times at once with one Idempotency-Key: assert that every
    success is the same answer, exactly one of them the first (not replayed), and that every
    refusal is idempotency_key_in_use; returns that answer."""
    succeeded = [r for r in answers if r.is_success]
    assert succeeded, [r.text for r in answers]
    assert len({(r.status_code, r.content) for r in succeeded}) == 1, "every 2xx is the same"
    assert sum(REPLAYED not in r.headers for r in succeeded) == 1, "one first answer"
    refused = Counter(r.json()["code"] for r in answers if not r.is_success)
    assert set(refused) <= {"idempotency_key_in_use"}, refused
    return succeeded[0]
