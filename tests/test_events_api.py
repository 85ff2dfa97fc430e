"""Events: POST /initialize, GET /status/{eventId}, GET /events, GET /events/{eventId}."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from booking_service.config import Settings
from booking_service.main import create_app
from booking_service.schemas.common import MAX_DB_ID
from tests.support.api import ApiUser, TokenFactory, api_users, create_event, fill_event
from tests.support.checks import assert_unchanged
from tests.support.databases import Database, wipe_tables


@pytest.fixture
async def owner(database: Database, tokens: TokenFactory) -> ApiUser:
    (user,) = await api_users(database.url, tokens, 1, prefix="owner")
    return user


async def test_initialize_creates_an_event_owned_by_its_creator(
    client: httpx.AsyncClient, owner: ApiUser
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = await client.post(
        "/initialize", json={"name": "Concert 2025", "tickets": 100}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {"message": "Event Created", "eventId": body["eventId"]}
    assert isinstance(body["eventId"], int)

    event = (await client.get(f"/events/{body['eventId']}", headers=owner.headers)).json()
    created_at = datetime.fromisoformat(event.pop("created_at"))
    assert created_at.tzinfo is not None, "timestamps are sent with their UTC offset"
    assert before <= created_at <= datetime.now(UTC)
    assert event == {
        "eventId": body["eventId"],
        "name": "Concert 2025",
        "capacity": 100,
        "available_tickets": 100,
        "total_ticket_booked": 0,
        "waiting_list_count": 0,
        "waiting_list_tickets": 0,
        "first_in_line_needs": 0,
        "offered_tickets": 0,
        "max_per_user": 1,
        "ownerId": owner.id,
        "state": "open",
        "waitlist_mode": "instant",
        "offer_seconds": 900,
        "sales_start": None,
        "sales_end": None,
        "transfers_allowed": True,
        "checked_in_tickets": 0,
    }
    status = await client.get(f"/status/{body['eventId']}", headers=owner.headers)
    assert status.status_code == 200
    # The original service's shape, the line's length (entries and tickets, and what its first
    # entry still lacks), tickets held by open offers, whether
    # the event takes bookings, its sale window and the tickets checked in at the door.
    assert status.json() == {
        "event_name": "Concert 2025",
        "available_tickets": 100,
        "total_ticket_booked": 0,
        "waiting_list_count": 0,
        "waiting_list_tickets": 0,
        "first_in_line_needs": 0,
        "offered_tickets": 0,
        "state": "open",
        "sales_start": None,
        "sales_end": None,
        "checked_in_tickets": 0,
    }


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("  Concert 2025 \t", "Concert 2025"),
        ("x", "x"),
        ("é" * 200, "é" * 200),  # 200 characters, not bytes
        (" " + "x" * 200 + "\t", "x" * 200),  # 1-200 characters after trimming
        ("a" + " " * 198 + "b", "a" + " " * 198 + "b"),
        ("Ünïcødé 🎫", "Ünïcødé 🎫"),
    ],
)
async def test_initialize_trims_and_keeps_the_name(
    client: httpx.AsyncClient, owner: ApiUser, sent: str, stored: str
) -> None:
    event_id = await create_event(client, owner.headers, tickets=1, name=sent)
    status = (await client.get(f"/status/{event_id}", headers=owner.headers)).json()
    assert status["event_name"] == stored


@pytest.mark.parametrize(
    ("tickets", "capacity"),
    [
        (1, 1),
        (12.0, 12),  # JSON has one number type: 12.0 is the integer 12, by design
        (1_000_000, 1_000_000),  # the default maximum itself
    ],
)
async def test_initialize_accepts_whole_ticket_counts(
    client: httpx.AsyncClient, owner: ApiUser, tickets: Any, capacity: int
) -> None:
    event_id = await create_event(client, owner.headers, tickets=tickets)
    event = (await client.get(f"/events/{event_id}", headers=owner.headers)).json()
    assert (event["capacity"], event["available_tickets"]) == (capacity, capacity)


MISSING = object()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tickets", "12"),
        ("tickets", True),
        ("tickets", False),
        ("tickets", 1.5),
        ("tickets", 0),
        ("tickets", -1),
        ("tickets", -(2**70)),
        ("tickets", 1_000_001),  # over the configured maximum
        ("tickets", 2_000_000_001),  # over the hard limit of the schema
        ("tickets", 2**64),
        ("tickets", None),
        ("tickets", [12]),
        ("tickets", MISSING),
        ("name", ""),
        ("name", "   "),
        ("name", "\t\n"),
        ("name", "x" * 201),
        ("name", " " + "x" * 201 + "\n"),
        ("name", 123),
        ("name", None),
        ("name", MISSING),
    ],
)
async def test_initialize_rejects_bad_values(
    client: httpx.AsyncClient, database: Database, owner: ApiUser, field: str, value: Any
) -> None:
    body: dict[str, Any] = {"name": "Concert", "tickets": 10}
    if value is MISSING:
        del body[field]
    else:
        body[field] = value
    async with assert_unchanged(database.url):
        response = await client.post("/initialize", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert ["body", field] in [detail["loc"][:2] for detail in error["details"]]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Concert", "tickets": 10, "owner": 1},
        {"name": "Concert", "tickets": 10, "available": 5},
        {"Name": "Concert", "tickets": 10},
        {},
        [],
        "Concert",
    ],
)
async def test_initialize_rejects_unknown_fields_and_shapes(
    client: httpx.AsyncClient, database: Database, owner: ApiUser, body: Any
) -> None:
    async with assert_unchanged(database.url):
        response = await client.post("/initialize", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_initialize_rejects_a_body_that_is_not_json(
    client: httpx.AsyncClient, database: Database, owner: ApiUser
) -> None:
    async with assert_unchanged(database.url):
        response = await client.post(
            "/initialize",
            content=b'{"name": "Concert", "tickets": 1',
            headers={**owner.headers, "Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.text


async def test_maximum_tickets_is_configurable(
    database: Database, tokens: TokenFactory, settings_factory: Callable[..., Settings]
) -> None:
    (owner,) = await api_users(database.url, tokens, 1, prefix="owner")
    app = create_app(settings_factory(max_tickets_per_event=5))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        try:
            assert (await create_event(client, owner.headers, tickets=5)) > 0
            async with assert_unchanged(database.url):
                response = await client.post(
                    "/initialize", json={"name": "Big", "tickets": 6}, headers=owner.headers
                )
            assert response.status_code == 422
            assert response.json()["details"][0]["loc"] == ["body", "tickets"]
            assert "at most 5" in response.json()["details"][0]["msg"]
        finally:
            await wipe_tables(database.url)


@pytest.mark.parametrize("path", ["/status/{id}", "/events/{id}"])
async def test_unknown_event_is_404(client: httpx.AsyncClient, owner: ApiUser, path: str) -> None:
    event_id = await create_event(client, owner.headers, tickets=1)
    for unknown in (event_id + 1, event_id + 1000, MAX_DB_ID):
        response = await client.get(path.format(id=unknown), headers=owner.headers)
        assert response.status_code == 404, response.text
        assert response.json() == {
            "message": "Event not found",
            "code": "event_not_found",
            "details": None,
        }


@pytest.mark.parametrize("path", ["/status/{id}", "/events/{id}"])
@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", "1.5", str(MAX_DB_ID + 1), "1e3"])
async def test_malformed_event_id_in_path_is_422(
    client: httpx.AsyncClient, owner: ApiUser, path: str, bad_id: str
) -> None:
    response = await client.get(path.format(id=bad_id), headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_events_are_listed_newest_first_with_pagination(
    client: httpx.AsyncClient, owner: ApiUser
) -> None:
    ids = [await create_event(client, owner.headers, tickets=i + 1, name=f"E{i}") for i in range(5)]
    newest_first = list(reversed(ids))

    async def page(**params: int) -> dict[str, Any]:
        response = await client.get("/events", params=params, headers=owner.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    default = await page()
    assert (default["limit"], default["offset"], default["total"]) == (20, 0, 5)
    assert [e["eventId"] for e in default["items"]] == newest_first

    seen: list[int] = []
    for offset in range(0, 6, 2):
        body = await page(limit=2, offset=offset)
        assert (body["limit"], body["offset"], body["total"]) == (2, offset, 5)
        assert len(body["items"]) == min(2, 5 - offset)
        seen += [e["eventId"] for e in body["items"]]
    assert seen == newest_first

    beyond = await page(limit=100, offset=5)
    assert (beyond["items"], beyond["total"]) == ([], 5)

    first = default["items"][-1]
    assert first["name"] == "E0"
    assert (first["capacity"], first["available_tickets"], first["ownerId"]) == (1, 1, owner.id)


async def test_events_list_shows_availability(
    client: httpx.AsyncClient, database: Database, tokens: TokenFactory, owner: ApiUser
) -> None:
    fans = await api_users(database.url, tokens, 3, prefix="fan")
    event_id = await fill_event(client, owner.headers, [fan.headers for fan in fans], 2)
    (item,) = (await client.get("/events", headers=owner.headers)).json()["items"]
    single = (await client.get(f"/events/{event_id}", headers=owner.headers)).json()
    assert item == single
    assert (
        item["capacity"],
        item["available_tickets"],
        item["total_ticket_booked"],
        item["waiting_list_count"],
    ) == (2, 0, 2, 1)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"offset": -1},
        {"offset": 1_000_001},
        {"limit": "ten"},
        {"offset": "1.5"},
    ],
)
async def test_events_pagination_bounds_are_422(
    client: httpx.AsyncClient, owner: ApiUser, params: dict[str, Any]
) -> None:
    response = await client.get("/events", params=params, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_events_pagination_accepts_its_bounds(
    client: httpx.AsyncClient, owner: ApiUser
) -> None:
    for params in ({"limit": 1}, {"limit": 100}, {"offset": 0}, {"offset": 1_000_000}):
        response = await client.get("/events", params=params, headers=owner.headers)
        assert response.status_code == 200, (params, response.text)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/initialize", {"name": "Concert", "tickets": 1}),
        ("POST", "/book", {"eventId": 1}),
        ("POST", "/cancel", {"eventId": 1}),
        ("GET", "/status/1", None),
        ("GET", "/events", None),
        ("GET", "/events/1", None),
        ("GET", "/me/bookings", None),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt", "Basic dXNlcjpwdw=="])
async def test_every_endpoint_needs_a_valid_token(
    client: httpx.AsyncClient,
    database: Database,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with assert_unchanged(database.url):
        response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
