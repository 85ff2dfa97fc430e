"""Rate limits in process: who is counted, per endpoint, and what a refused client hears.

Real server processes (several workers on Redis, Redis dying, proxies) are in
test_rate_limit_servers.py. Limits do not depend on the database, so these run on SQLite only.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.routing import APIRoute

from booking_service.app_state import app_state
from booking_service.config import Settings
from booking_service.deps import get_current_user, get_token_user
from booking_service.main import create_app
from booking_service.ratelimit import PER_ADDRESS_AUTH, PER_USER, PER_USER_AUTH, route_limit
from tests.support.api import create_event, register_and_login
from tests.support.apps import api_routes, http_client, started_app
from tests.support.databases import Database, wipe_tables
from tests.support.environment import require_redis
from tests.support.servers import free_port
from tests.support.settings import make_settings

LimitedApp = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
async def limited_app(sqlite_database: Database) -> AsyncIterator[LimitedApp]:
    """Start an app with rate limiting on and these settings."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[FastAPI]:
        settings = make_settings(sqlite_database.url, **{"rate_limit_enabled": True, **overrides})
        return started_app(settings)

    yield factory
    await wipe_tables(sqlite_database.url)


def _assert_refused(response: httpx.Response, limit: int, window_seconds: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited"
    assert set(body) == {"message", "code", "details"}
    assert 1 <= int(response.headers["retry-after"]) <= window_seconds
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert int(response.headers["x-ratelimit-reset"]) >= int(time.time())


async def test_one_budget_per_user_per_endpoint_not_per_url(limited_app: LimitedApp) -> None:
    app_context = limited_app(rate_limit="3/minute", auth_rate_limit="100/minute")
    async with app_context as app, http_client(app) as http:
        alice = await register_and_login(http, "alice")
        bob = await register_and_login(http, "bob")
        events = [await create_event(http, bob, tickets=1, name=f"E{i}") for i in range(3)]

        for event_id in events:
            assert (await http.get(f"/status/{event_id}", headers=alice)).status_code == 200
        # A fourth event id is a new URL but the same endpoint: refused, before any lookup.
        _assert_refused(await http.get("/status/999", headers=alice), 3, 60)
        # Other endpoints and other users have budgets of their own.
        assert (await http.get("/events", headers=alice)).status_code == 200
        assert (await http.get(f"/status/{events[0]}", headers=bob)).status_code == 200


async def test_served_answers_carry_the_budget_but_no_retry_after(
    limited_app: LimitedApp,
) -> None:
    async with limited_app(rate_limit="5/minute") as app, http_client(app) as http:
        alice = await register_and_login(http, "alice")
        first = await http.get("/me/bookings", headers=alice)
        second = await http.get("/me/bookings", headers=alice)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "5"
    assert (first.headers["x-ratelimit-remaining"], second.headers["x-ratelimit-remaining"]) == (
        "4",
        "3",
    )
    assert int(first.headers["x-ratelimit-reset"]) >= int(time.time())
    assert "retry-after" not in first.headers


async def test_login_and_register_are_limited_per_address_before_hashing(
    limited_app: LimitedApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(auth_rate_limit="2/minute") as app:
        hashed: list[str] = []
        hasher = app_state(app).password_hasher
        original_hash, original_verify = hasher.hash, hasher.verify

        async def counting_hash(password: str) -> str:
            hashed.append("hash")
            result: str = await original_hash(password)
            return result

        async def counting_verify(password: str, password_hash: str | None) -> bool:
            hashed.append("verify")
            result: bool = await original_verify(password, password_hash)
            return result

        monkeypatch.setattr(hasher, "hash", counting_hash)
        monkeypatch.setattr(hasher, "verify", counting_verify)
        wrong = {"username": "nobody", "password": "guess-123"}
        async with http_client(app, address="203.0.113.7") as attacker:
            answers = [(await attacker.post("/login", json=wrong)).status_code for _ in range(2)]
            assert answers == [401, 401]
            _assert_refused(await attacker.post("/login", json=wrong), 2, 60)
            assert hashed == ["verify", "verify"], "the refused attempt hashed nothing"

            for name in ("carol", "dave"):
                credentials = {"username": name, "password": "password123"}
                assert (await attacker.post("/register", json=credentials)).status_code == 201
            refused = await attacker.post(
                "/register", json={"username": "erin", "password": "password123"}
            )
            _assert_refused(refused, 2, 60)
            assert hashed.count("hash") == 2

        async with http_client(app, address="198.51.100.1") as someone_else:
            assert (await someone_else.post("/login", json=wrong)).status_code == 401


async def test_unmarked_routes_are_never_limited(limited_app: LimitedApp) -> None:
    async with limited_app(rate_limit="1/hour", auth_rate_limit="1/hour") as app:

        @app.get("/probe")  # as a health route would be: declared without a limit
        async def probe() -> dict[str, bool]:
            return {"ok": True}

        async with http_client(app) as http:
            for path in ("/probe", "/openapi.json", "/docs"):
                for _ in range(3):
                    response = await http.get(path)
                    assert response.status_code == 200, path
                    assert "x-ratelimit-limit" not in response.headers


def _uses_guard(route: APIRoute) -> bool:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call in (get_token_user, get_current_user):
            return True
        pending.extend(dependant.dependencies)
    return False


def test_every_operation_is_limited_by_the_right_key() -> None:
    routes = api_routes(create_app(Settings(_env_file=None, jwt_secret="k" * 40)))
    assert len(routes) >= 10
    for path, route in routes:
        limit = route_limit(route.endpoint)
        if path in ("/register", "/login"):
            assert limit is PER_ADDRESS_AUTH, path
        elif _uses_guard(route):
            assert limit in (PER_USER, PER_USER_AUTH), path
        else:  # health, readiness and the like stay unlimited
            assert limit is None, path


async def test_disabled_means_no_limits_and_no_headers(limited_app: LimitedApp) -> None:
    app_context = limited_app(rate_limit_enabled=False, rate_limit="1/hour")
    async with app_context as app, http_client(app) as http:
        alice = await register_and_login(http, "alice")
        for _ in range(3):
            response = await http.get("/me/bookings", headers=alice)
            assert response.status_code == 200
            assert "x-ratelimit-limit" not in response.headers


async def test_unreachable_storage_fails_open_with_a_warning(
    limited_app: LimitedApp, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on this port: every storage call fails at once.
    storage = f"redis://127.0.0.1:{free_port()}/0"
    caplog.set_level(logging.WARNING)
    app_context = limited_app(rate_limit="3/minute", rate_limit_storage_url=storage)
    async with app_context as app, http_client(app) as http:
        alice = await register_and_login(http, "alice")
        answers = [(await http.get("/me/bookings", headers=alice)).status_code for _ in range(5)]
    # Counted in this worker's memory instead: served within the budget, then refused.
    assert answers == [200, 200, 200, 429, 429]
    warnings = [r.getMessage() for r in caplog.records if r.name == "booking_service.ratelimit"]
    assert len(warnings) == 1, warnings
    assert "unreachable" in warnings[0]


def _budget(response: httpx.Response) -> tuple[int, str, str, str | None]:
    headers = response.headers
    return (
        response.status_code,
        headers["x-ratelimit-limit"],
        headers["x-ratelimit-remaining"],
        headers.get("retry-after"),
    )


async def _answers(app: FastAPI, name: str, count: int) -> list[tuple[int, str, str, str | None]]:
    async with http_client(app) as http:
        user = await register_and_login(http, name)
        return [_budget(await http.get("/me/bookings", headers=user)) for _ in range(count)]


async def test_redis_and_memory_count_and_answer_alike(limited_app: LimitedApp) -> None:
    # Two windows: the second is used up only by requests the first one let through.
    url = require_redis()
    prefix = f"booking-test-{secrets.token_hex(6)}"
    answers = {}
    for name, storage in (("alice", "memory://"), ("bob", url)):
        overrides = {"rate_limit": "3/minute;4/hour", "rate_limit_storage_url": storage}
        async with limited_app(**overrides, rate_limit_key_prefix=prefix) as app:
            answers[storage] = await _answers(app, name, 6)
            assert (app_state(app).rate_limiter.shared is not None) == (storage == url)
    for storage in ("memory://", url):
        served, refused = answers[storage][:3], answers[storage][3:]
        assert served == [(200, "3", "2", None), (200, "3", "1", None), (200, "3", "0", None)]
        assert [answer[:3] for answer in refused] == [(429, "3", "0")] * 3
        assert all(1 <= int(answer[3] or 0) <= 60 for answer in refused), refused
    client = redis.Redis.from_url(url)
    try:
        hourly = [key for key in client.scan_iter(match=f"*{prefix}*") if key.endswith(b"/hour")]
        assert [int(client.get(key) or 0) for key in hourly] == [3], "refusals spent nothing"
        client.delete(*client.scan_iter(match=f"*{prefix}*"))
    finally:
        client.close()
