"""Registration, login and the JWT guard over HTTP, on both databases."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from booking_service.app_state import app_state
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import User
from booking_service.models.types import utcnow
from booking_service.repositories import users
from tests.support.api import TokenFactory, register_and_login
from tests.support.apps import http_client
from tests.support.databases import Database
from tests.test_security import BAD_TOKENS

CREDENTIALS = {"username": "user123", "password": "password123"}


async def test_register_then_login(client: httpx.AsyncClient) -> None:
    response = await client.post("/register", json=CREDENTIALS)
    assert response.status_code == 201
    assert response.json() == {"message": "Registration Successful"}

    response = await client.post("/login", json=CREDENTIALS)
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 60 * 60
    assert "password" not in response.text


async def test_usernames_are_case_insensitive(client: httpx.AsyncClient) -> None:
    assert (
        await client.post("/register", json={**CREDENTIALS, "username": "Alice"})
    ).status_code == 201
    taken = await client.post("/register", json={**CREDENTIALS, "username": "aLiCe"})
    assert taken.status_code == 409
    assert taken.json()["code"] == "username_taken"
    login = await client.post("/login", json={**CREDENTIALS, "username": "ALICE"})
    assert login.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": "password123"},
        {"username": "a" * 51, "password": "password123"},
        {"username": "has space", "password": "password123"},
        {"username": "semi;colon", "password": "password123"},
        {"username": "ünïcode", "password": "password123"},
        {"username": "trailing\n", "password": "password123"},
        {"username": 12345, "password": "password123"},
        {"username": "user123", "password": "short"},
        {"username": "user123", "password": "p" * 129},
        {"username": "user123", "password": 12345678},
        {"username": "user123"},
        {"password": "password123"},
        {"username": "user123", "password": "password123", "admin": True},
    ],
)
async def test_register_rejects_bad_input(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/register", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["details"]
    # Nothing half-written: the name is still free.
    assert (await client.post("/register", json=CREDENTIALS)).status_code == 201


async def test_register_accepts_the_edges(client: httpx.AsyncClient) -> None:
    for body in (
        {"username": "a.b", "password": "p" * 8},
        {"username": "x" * 50, "password": "p" * 128},
        {"username": "A_b-c.9", "password": "パスワード-long-enough"},
    ):
        assert (await client.post("/register", json=body)).status_code == 201, body


async def test_login_failures_are_indistinguishable(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.post("/register", json=CREDENTIALS)
    verified: list[str | None] = []
    original = app_state(app).password_hasher.verify

    async def spy(password: str, password_hash: str | None) -> bool:
        verified.append(password_hash)
        result: bool = await original(password, password_hash)
        return result

    monkeypatch.setattr(app_state(app).password_hasher, "verify", spy)
    wrong_password = await client.post("/login", json={**CREDENTIALS, "password": "wrong-password"})
    unknown_user = await client.post("/login", json={**CREDENTIALS, "username": "nobody"})
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.headers["www-authenticate"] == "Bearer"
    # The unknown name still paid for a hash verification (against a dummy hash).
    assert len(verified) == 2
    assert verified[1] is None


async def test_guard_accepts_bearer_and_the_original_bare_token(client: httpx.AsyncClient) -> None:
    headers = await register_and_login(client, "user123")
    token = headers["Authorization"].removeprefix("Bearer ")
    for value in (f"Bearer {token}", f"bearer {token}", token, f"  Bearer   {token}  "):
        response = await client.get("/me/bookings", headers={"Authorization": value})
        assert response.status_code == 200, value


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] in {"not_authenticated", "invalid_token"}


@pytest.mark.parametrize("kind", [k for k in BAD_TOKENS if k != "empty"])
async def test_guard_refuses_bad_tokens(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, kind: str
) -> None:
    [user_id] = await create_users(database.url, 1)
    await client.get("/me/bookings", headers=tokens.headers(user_id))  # user exists and works
    token = BAD_TOKENS[kind](tokens.codec)
    _assert_401(await client.get("/me/bookings", headers={"Authorization": f"Bearer {token}"}))
    _assert_401(await client.post("/book", json={"eventId": 1}, headers={"Authorization": token}))


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b c"],
)
async def test_guard_refuses_missing_or_malformed_headers(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    _assert_401(await client.get("/me/bookings", headers=headers))
    _assert_401(await client.post("/initialize", json={"name": "x", "tickets": 1}, headers=headers))


async def test_token_of_a_closed_account_is_refused(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database, app: FastAPI
) -> None:
    [user_id] = await create_users(database.url, 1)
    headers = tokens.headers(user_id)
    assert (await client.get("/me/bookings", headers=headers)).status_code == 200
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(update(User).where(User.id == user_id).values(deleted_at=utcnow()))
    app_state(app).user_cache.clear()  # as on another worker, or once the cache entry expires
    _assert_401(await client.get("/me/bookings", headers=headers))


async def test_token_of_a_user_that_never_existed_is_refused(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    _assert_401(await client.get("/me/bookings", headers=tokens.headers(987654321)))


async def test_expired_token_from_login_is_refused(
    client: httpx.AsyncClient, tokens: TokenFactory, database: Database
) -> None:
    [user_id] = await create_users(database.url, 1)
    stale = tokens.codec.issue(user_id, "user", now=time.time() - 2 * 3600)
    _assert_401(await client.get("/me/bookings", headers={"Authorization": f"Bearer {stale}"}))


SECRET_PASSWORD = "Sup3r-Secret-Pw!"


async def test_passwords_never_appear_in_answers_or_logs(
    client: httpx.AsyncClient,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # everything any library logs, SQL included
    secret = SECRET_PASSWORD
    json_type = {"Content-Type": "application/json"}
    attempts: list[tuple[str, dict[str, Any], int]] = [
        ("/register", {"json": {"username": "alice", "password": secret}}, 201),
        ("/register", {"json": {"username": "alice", "password": secret}}, 409),
        ("/register", {"json": {"username": "a", "password": secret}}, 422),
        ("/register", {"json": {"username": "alice2", "password": secret * 10}}, 422),
        ("/register", {"json": {"username": "alice3", "password": [secret]}}, 422),
        ("/register", {"json": {"username": "alice4", "pass": secret}}, 422),
        ("/login", {"json": {"username": "alice", "password": secret + "x"}}, 401),
        ("/login", {"json": {"username": "nobody", "password": secret}}, 401),
        ("/login", {"json": {"username": "alice", "password": secret}}, 200),
        ("/login", {"json": {"username": "alice", "password": secret, "admin": True}}, 422),
        ("/login", {"json": {"username": ["alice"], "password": secret}}, 422),
        (
            "/login",
            {
                "content": f'{{"username": "alice", "password": "{secret}"'.encode(),
                "headers": json_type,
            },
            422,
        ),
        (
            "/login",
            {
                "content": f'{{"username": "\xe9", "password": "{secret}"}}'.encode("latin-1"),
                "headers": json_type,
            },
            400,
        ),
        (
            "/login",
            {
                "content": f"username=alice&password={secret}".encode(),
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            415,
        ),
    ]
    answers = []
    for path, request, status in attempts:
        response = await client.post(path, **request)
        assert response.status_code == status, (path, request, response.text)
        answers.append(response)

    async def broken_lookup(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(users, "get_login", broken_lookup)
    async with http_client(app, raise_app_exceptions=False) as http:
        crashed = await http.post("/login", json={"username": "alice", "password": secret})
    assert crashed.status_code == 500
    answers.append(crashed)

    for response in answers:
        assert secret not in response.text
        assert all(secret not in value for value in response.headers.values())
    assert "the database went away" in caplog.text, "the log did capture the failure"
    assert secret not in caplog.text
    assert all(secret not in record.getMessage() for record in caplog.records)
