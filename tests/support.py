"""Helpers shared by the tests: databases, users, tokens and the booking invariants."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from booking_service import migrations
from booking_service.bench.invariants import InvariantReport, check_invariants
from booking_service.bench.seed import BULK_PASSWORD, create_users
from booking_service.config import Settings
from booking_service.db import Base, connect
from booking_service.security import TokenCodec

TEST_SECRET = "test-secret-" + "x" * 40
DEFAULT_MARIADB_SERVER = "mysql+asyncmy://root@127.0.0.1:3306/"


@dataclass(frozen=True)
class Database:
    backend: str  # "sqlite" or "mariadb"
    url: str


def mariadb_server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_MARIADB_SERVER


async def mariadb_unavailable_reason() -> str | None:
    url = make_url(mariadb_server_url()).set(database=None)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the server is a reason to skip
        return f"no MariaDB/MySQL at {url.render_as_string()} ({type(exc).__name__}: {exc})"
    finally:
        await engine.dispose()
    return None


async def require_mariadb() -> None:
    """Skip the calling test where no MariaDB answers, but fail under CI=true."""
    reason = await mariadb_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"MariaDB is required under CI=true: {reason}")
    pytest.skip(f"MariaDB tests skipped: {reason}")


async def _migrate(url: str) -> None:
    # Alembic's env.py runs its own event loop, so it runs in a thread of its own.
    await asyncio.to_thread(migrations.upgrade, url)


@asynccontextmanager
async def create_mariadb_database() -> AsyncIterator[Database]:
    """A fresh database on the test server, migrated to head, dropped afterwards.

    TEST_DATABASE_URL names the server; a database in it is used as the name prefix.
    """
    server = make_url(mariadb_server_url())
    name = f"{server.database or 'booking_test'}_{secrets.token_hex(4)}"
    admin = create_async_engine(server.set(database=None), poolclass=NullPool)
    async with admin.connect() as conn:
        await conn.execute(
            text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        )
    url = server.set(database=name).update_query_dict({"charset": "utf8mb4"})
    database = Database("mariadb", url.render_as_string(hide_password=False))
    try:
        await _migrate(database.url)
        yield database
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        await admin.dispose()


@asynccontextmanager
async def create_sqlite_database(directory: Path) -> AsyncIterator[Database]:
    database = Database("sqlite", f"sqlite+aiosqlite:///{directory / 'booking-test.db'}")
    await _migrate(database.url)
    yield database


async def wipe_tables(url: str) -> None:
    async with connect(url) as engine, engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))


class TokenFactory:
    """Mints valid tokens for users created straight in the database."""

    def __init__(self, settings: Settings) -> None:
        self.codec = TokenCodec.from_settings(settings)

    def token(self, user_id: int, username: str = "someone") -> str:
        return self.codec.issue(user_id, username)

    def headers(self, user_id: int, username: str = "someone") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, username)}"}


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
    client: httpx.AsyncClient, headers: dict[str, str], tickets: int, name: str = "Concert"
) -> int:
    response = await client.post(
        "/initialize", json={"name": name, "tickets": tickets}, headers=headers
    )
    assert response.status_code == 201, response.text
    event_id: int = response.json()["eventId"]
    return event_id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


__all__ = [
    "BULK_PASSWORD",
    "Database",
    "InvariantReport",
    "TokenFactory",
    "check_invariants",
    "connect",
    "create_users",
]
