"""Helpers shared by the tests: databases, users, tokens and the booking invariants."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from booking_service import migrations
from booking_service.config import Settings
from booking_service.db import Base
from booking_service.models import Booking, BookingStatus, Event, User
from booking_service.security import PasswordHasher, TokenCodec

TEST_SECRET = "test-secret-" + "x" * 40
DEFAULT_MARIADB_SERVER = "mysql+asyncmy://root@127.0.0.1:3306/"
# Users made in bulk share one real hash, so they can also log in.
BULK_PASSWORD = "password123"
BULK_PASSWORD_HASH = PasswordHasher(memory_kib=8192, time_cost=1, concurrency=1).hash_sync(
    BULK_PASSWORD
)


@dataclass(frozen=True)
class Database:
    backend: str  # "sqlite" or "mariadb"
    url: str


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "environment": "dev",
        "jwt_secret": TEST_SECRET,
        # Cheap hashes keep the suite fast; production defaults are tested on their own.
        "password_hash_memory_kib": 8 * 1024,
        "password_hash_time_cost": 1,
        "rate_limit_enabled": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


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


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()


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


async def create_users(url: str, count: int, prefix: str = "user") -> list[int]:
    """Insert `count` users in bulk (one shared password hash) and return their ids in order."""
    names = [f"{prefix}{i:06d}" for i in range(count)]
    async with connect(url) as engine, engine.begin() as conn:
        await conn.execute(
            insert(User),
            [{"username": name, "password_hash": BULK_PASSWORD_HASH} for name in names],
        )
        rows = await conn.execute(select(User.id, User.username).where(User.username.in_(names)))
        ids = {row.username: row.id for row in rows}
    return [ids[name] for name in names]


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
    client: httpx.AsyncClient, headers: dict[str, str], tickets: int, name: str = "Concert"
) -> int:
    response = await client.post(
        "/initialize", json={"name": name, "tickets": tickets}, headers=headers
    )
    assert response.status_code == 201, response.text
    event_id: int = response.json()["eventId"]
    return event_id


async def book(client: httpx.AsyncClient, headers: dict[str, str], event_id: int) -> httpx.Response:
    return await client.post("/book", json={"eventId": event_id}, headers=headers)


async def cancel(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: int
) -> httpx.Response:
    return await client.post("/cancel", json={"eventId": event_id}, headers=headers)


async def event_status(
    client: httpx.AsyncClient, headers: dict[str, str], event_id: int
) -> dict[str, Any]:
    response = await client.get(f"/status/{event_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def my_bookings(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/me/bookings", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@dataclass
class InvariantReport:
    confirmed: int
    waiting: int
    available: int
    capacity: int


async def check_invariants(url: str, event_ids: Sequence[int]) -> dict[int, InvariantReport]:
    """Assert every booking rule on these events, straight from the database.

    - confirmed never exceeds capacity, and confirmed + available = capacity;
    - the event's waiting_count matches the rows in line, and no ticket is free while anyone waits;
    - nobody holds two live claims on one event; line numbers are unique;
    - promotions went strictly in line order: whoever joined the line earlier than a promoted
      user was promoted before them or had left before them;
    - over the whole history, no ticket was taken from the pool while someone waited.
    """
    reports: dict[int, InvariantReport] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            event = (await conn.execute(select(Event).where(Event.id == event_id))).one()
            rows = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
            confirmed = [r for r in rows if r.status == BookingStatus.CONFIRMED]
            waiting = [r for r in rows if r.status == BookingStatus.WAITLISTED]
            assert len(confirmed) <= event.capacity, f"event {event_id} oversold"
            assert len(confirmed) + event.available == event.capacity, (
                f"event {event_id}: {len(confirmed)} confirmed + {event.available} available "
                f"!= {event.capacity}"
            )
            assert len(waiting) == event.waiting_count, f"event {event_id}: waiting_count drift"
            assert event.available == 0 or not waiting, f"event {event_id}: free ticket, full line"
            live: dict[int, int] = defaultdict(int)
            for r in rows:
                if r.active == 1:
                    live[r.user_id] += 1
            assert all(count == 1 for count in live.values()), f"event {event_id}: double claim"
            seqs = [r.line_seq for r in rows if r.line_seq is not None]
            assert len(seqs) == len(set(seqs)), f"event {event_id}: line number used twice"
            _assert_promotions_in_order(event_id, rows)
            _assert_nobody_jumped_the_line(event_id, rows)
            reports[event_id] = InvariantReport(
                confirmed=len(confirmed),
                waiting=len(waiting),
                available=event.available,
                capacity=event.capacity,
            )
    return reports


def _assert_promotions_in_order(event_id: int, rows: Sequence[Any]) -> None:
    promoted = [r for r in rows if r.promoted_at is not None]
    in_line = [r for r in rows if r.line_seq is not None]
    for p in promoted:
        for earlier in in_line:
            if earlier.line_seq >= p.line_seq:
                continue
            if earlier.promoted_at is not None:
                ok = earlier.promoted_at <= p.promoted_at
            elif earlier.status == BookingStatus.LEFT:
                ok = earlier.ended_at is not None and earlier.ended_at <= p.promoted_at
            else:  # still waiting while someone who came later got a ticket
                ok = False
            assert ok, (
                f"event {event_id}: booking {p.id} (line {p.line_seq}) promoted ahead of "
                f"booking {earlier.id} (line {earlier.line_seq}, {earlier.status})"
            )


# Snapshots: proving that a refused request changed nothing.

Snapshot = dict[str, list[tuple[Any, ...]]]


async def db_snapshot(url: str) -> Snapshot:
    """Every row of every table in primary-key order: equal snapshots mean nothing changed."""
    snapshot: Snapshot = {}
    async with connect(url) as engine, engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            snapshot[table.name] = [tuple(row) for row in rows]
    return snapshot


@asynccontextmanager
async def assert_unchanged(url: str, event_ids: Sequence[int] = ()) -> AsyncIterator[None]:
    """Assert that the block leaves every table exactly as it found it, invariants intact."""
    before = await db_snapshot(url)
    yield
    after = await db_snapshot(url)
    assert after == before, "the database changed"
    await check_invariants(url, event_ids)


@dataclass(frozen=True)
class BookingRecord:
    """One `booking` row as stored, for tests that look behind the API."""

    id: int
    event_id: int
    user_id: int
    status: BookingStatus
    active: int | None
    line_seq: int | None
    created_at: datetime
    confirmed_at: datetime | None
    promoted_at: datetime | None
    ended_at: datetime | None


async def booking_records(url: str, event_id: int | None = None) -> list[BookingRecord]:
    """The booking rows (of one event, or all), in id order."""
    query = select(Booking).order_by(Booking.id)
    if event_id is not None:
        query = query.where(Booking.event_id == event_id)
    async with connect(url) as engine, engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        BookingRecord(
            id=r.id,
            event_id=r.event_id,
            user_id=r.user_id,
            status=BookingStatus(r.status),
            active=r.active,
            line_seq=r.line_seq,
            created_at=r.created_at,
            confirmed_at=r.confirmed_at,
            promoted_at=r.promoted_at,
            ended_at=r.ended_at,
        )
        for r in rows
    ]


def _assert_nobody_jumped_the_line(event_id: int, rows: Sequence[Any]) -> None:
    """No ticket was ever taken from the pool while someone was in line.

    The end state can look perfect after this went wrong: someone joins the line beside a
    free ticket, and the next booker takes that ticket. The rows keep the history: every
    timestamp is taken under the event's row lock, so a ticket taken from the pool (confirmed
    without a line number) must not fall inside anyone's time in line (joined, until promoted
    or gone). Equal timestamps are given the benefit of the doubt.
    """
    waits = []
    for r in rows:
        if r.line_seq is None:
            continue
        if r.promoted_at is not None:
            until = r.promoted_at
        elif r.status == BookingStatus.LEFT:
            until = r.ended_at
        else:
            until = None  # still waiting
        waits.append((r, until))
    for taken in rows:
        if taken.line_seq is not None or taken.confirmed_at is None:
            continue
        for waiter, until in waits:
            if waiter.created_at < taken.confirmed_at and (
                until is None or taken.confirmed_at < until
            ):
                raise AssertionError(
                    f"event {event_id}: booking {taken.id} took a free ticket at "
                    f"{taken.confirmed_at} while booking {waiter.id} (line {waiter.line_seq}) "
                    f"had been waiting since {waiter.created_at}"
                )
