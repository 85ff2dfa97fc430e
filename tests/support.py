"""Helpers shared by the tests: databases, users, tokens and the booking invariants."""

from __future__ import annotations

import asyncio
import heapq
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from booking_service import migrations
from booking_service.config import Settings
from booking_service.db import Base
from booking_service.main import create_app
from booking_service.models import (
    Booking,
    BookingHistory,
    BookingStatus,
    Event,
    EventState,
    HistoryAction,
    User,
)
from booking_service.security import PasswordHasher, TokenCodec

TEST_SECRET = "test-secret-" + "x" * 40
BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]
# The committed OpenAPI document and the operations it must name.
OPENAPI_FILE = Path(__file__).resolve().parent.parent / "openapi.json"
OPERATION_IDS = {
    "register",
    "login",
    "create_event",
    "book_ticket",
    "cancel_booking",
    "get_event_status",
    "list_my_bookings",
    "list_events",
    "get_event",
    "close_account",
    "accept_offer",
    "decline_offer",
    "list_my_history",
    "update_event",
    "close_event",
    "cancel_event",
    "list_event_bookings",
    "list_event_history",
}
# The installed command, as a user runs it.
BOOKING_SERVICE = str(Path(sys.executable).with_name("booking-service"))
DEFAULT_MARIADB_SERVER = "mysql+asyncmy://root@127.0.0.1:3306/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Users made in bulk share one real hash, so they can also log in.
BULK_PASSWORD = "password123"
BULK_PASSWORD_HASH = PasswordHasher(memory_kib=8192, time_cost=1, concurrency=1).hash_sync(
    BULK_PASSWORD
)


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


def skip_unless_available(what: str, reason: str | None) -> None:
    """Skip the calling test when `reason` says `what` is missing, but fail under CI=true."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true: {reason}")
    pytest.skip(f"{what} tests skipped: {reason}")


async def require_mariadb() -> None:
    """Skip the calling test where no MariaDB answers, but fail under CI=true."""
    skip_unless_available("MariaDB", await mariadb_unavailable_reason())


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


def require_redis(url: str) -> None:
    """Skip the calling test where no Redis answers at `url`, but fail under CI=true."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    reason = None
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis at {url} ({type(exc).__name__}: {exc})"
    finally:
        client.close()
    skip_unless_available("Redis", reason)


def require_program(name: str) -> str:
    """The path of the program `name`; skip (fail under CI=true) where it is not installed."""
    path = shutil.which(name)
    skip_unless_available(name, None if path else f"`{name}` is not on PATH")
    assert path is not None
    return path


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


@asynccontextmanager
async def started_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """An app of its own, for tests that need settings the shared `app` fixture lacks."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def http_client(
    app: FastAPI, *, address: str = "127.0.0.1", raise_app_exceptions: bool = True
) -> httpx.AsyncClient:
    """An in-process client; `address` is the client address the app sees."""
    transport = httpx.ASGITransport(
        app=app, client=(address, 50000), raise_app_exceptions=raise_app_exceptions
    )
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every operation of the app, as (path as served, the route as declared)."""
    routes = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            routes.append((str(context.path), route))
    return routes


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


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 20, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def wait_past(moment: datetime) -> None:
    """Let the clock pass `moment` (an offer's deadline, say): time itself is what is tested."""
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.01)


@dataclass
class InvariantReport:
    confirmed: int
    waiting: int
    available: int
    capacity: int
    offered: int = 0
    history_entries: int = 0


async def check_invariants(url: str, event_ids: Sequence[int]) -> dict[int, InvariantReport]:
    """Assert every booking rule on these events, straight from the database.

    - confirmed + offered + available = capacity: an open offer holds its ticket, so no ticket
      is sold or offered twice and none is lost; the event's counters match the rows;
    - no ticket is free while anyone waits (a freed ticket goes to the line, booked or offered);
    - every open offer has a deadline; a cancelled event holds nothing;
    - nobody holds two live claims on one event; line numbers are unique;
    - the history, replayed in id order (ids are given under the event's lock), is a valid life
      for every claim that ends in the claim's current status, each change recorded once; the
      line was FIFO, and every promotion or offer went to whoever was first in line then.
    """
    reports: dict[int, InvariantReport] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            event = (await conn.execute(select(Event).where(Event.id == event_id))).one()
            rows = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
            entries = (
                await conn.execute(
                    select(BookingHistory)
                    .where(BookingHistory.event_id == event_id)
                    .order_by(BookingHistory.id)
                )
            ).all()
            by_status: dict[str, list[Any]] = defaultdict(list)
            for r in rows:
                by_status[r.status].append(r)
            confirmed = by_status[BookingStatus.CONFIRMED]
            offered = by_status[BookingStatus.OFFERED]
            waiting = by_status[BookingStatus.WAITLISTED]
            where = f"event {event_id}"
            assert len(confirmed) + len(offered) <= event.capacity, f"{where} oversold"
            assert len(confirmed) + len(offered) + event.available == event.capacity, (
                f"{where}: {len(confirmed)} confirmed + {len(offered)} offered + "
                f"{event.available} available != {event.capacity}"
            )
            assert len(offered) == event.offered_count, f"{where}: offered_count drift"
            assert len(waiting) == event.waiting_count, f"{where}: waiting_count drift"
            assert event.available == 0 or not waiting, f"{where}: free ticket, full line"
            assert all(r.offer_expires_at is not None for r in offered), f"{where}: no deadline"
            if event.state == EventState.CANCELLED:
                assert len(confirmed) + len(offered) + len(waiting) == 0, f"{where}: still held"
            live: dict[int, int] = defaultdict(int)
            for r in rows:
                if r.active == 1:
                    live[r.user_id] += 1
            assert all(count == 1 for count in live.values()), f"{where}: double claim"
            seqs = [r.line_seq for r in rows if r.line_seq is not None]
            assert len(seqs) == len(set(seqs)), f"{where}: line number used twice"
            _replay_history(where, rows, entries)
            reports[event_id] = InvariantReport(
                confirmed=len(confirmed),
                waiting=len(waiting),
                available=event.available,
                capacity=event.capacity,
                offered=len(offered),
                history_entries=len(entries),
            )
    return reports


# A claim's life: from its status (None before it exists), each action leads to one status.
H, S = HistoryAction, BookingStatus
CLAIM_LIFE: dict[str | None, dict[str, str]] = {
    None: {H.BOOKED: S.CONFIRMED, H.WAITLISTED: S.WAITLISTED},
    S.WAITLISTED: {
        H.PROMOTED: S.CONFIRMED,
        H.OFFERED: S.OFFERED,
        H.LEFT: S.LEFT,
        H.EVENT_CANCELLED: S.EVENT_CANCELLED,
    },
    S.OFFERED: {
        H.ACCEPTED: S.CONFIRMED,
        H.DECLINED: S.DECLINED,
        H.EXPIRED: S.EXPIRED,
        H.EVENT_CANCELLED: S.EVENT_CANCELLED,
    },
    S.CONFIRMED: {H.CANCELLED: S.CANCELLED, H.EVENT_CANCELLED: S.EVENT_CANCELLED},
}


def _replay_history(where: str, rows: Sequence[Any], entries: Sequence[Any]) -> None:
    """Replay an event's history in id order against its booking rows."""
    bookings = {r.id: r for r in rows}
    state: dict[int, str | None] = dict.fromkeys(bookings)
    line: list[int] = []  # a heap of the line numbers of the people waiting
    in_line: set[int] = set()
    last_joined = 0
    for entry in entries:
        booking = bookings.get(entry.booking_id)
        assert booking is not None, f"{where}: history {entry.id} of another event's booking"
        assert entry.user_id == booking.user_id, f"{where}: history {entry.id} of another user"
        before = state[booking.id]
        after = CLAIM_LIFE.get(before, {}).get(entry.action)
        assert after is not None, (
            f"{where}: booking {booking.id} went {before} -> {entry.action} (history {entry.id})"
        )
        if entry.action == H.WAITLISTED:
            assert booking.line_seq > last_joined, f"{where}: line {booking.line_seq} not last"
            last_joined = booking.line_seq
            heapq.heappush(line, booking.line_seq)
            in_line.add(booking.line_seq)
        elif before == S.WAITLISTED:
            if entry.action in (H.PROMOTED, H.OFFERED):
                while line[0] not in in_line:  # people who left meanwhile
                    heapq.heappop(line)
                assert line[0] == booking.line_seq, (
                    f"{where}: booking {booking.id} (line {booking.line_seq}) {entry.action} "
                    f"while line {line[0]} was first (history {entry.id})"
                )
            in_line.discard(booking.line_seq)
        state[booking.id] = after
    for booking in rows:
        assert state[booking.id] == booking.status, (
            f"{where}: booking {booking.id} is {booking.status}, its history says "
            f"{state[booking.id]}"
        )
    waiting = {r.line_seq for r in rows if r.status == BookingStatus.WAITLISTED}
    assert in_line == waiting, f"{where}: the line replayed is not the line"


@dataclass(frozen=True)
class OfferAnswer:
    """What a client was told when it answered an offer."""

    user_id: int
    event_id: int
    path: str  # /offers/accept or /offers/decline
    status: int


# How the offer must have ended, by the answer its holder got.
OFFER_ENDINGS = {
    ("/offers/accept", 200): HistoryAction.ACCEPTED,
    ("/offers/decline", 200): HistoryAction.DECLINED,
    ("/offers/accept", 410): HistoryAction.EXPIRED,
    ("/offers/decline", 410): HistoryAction.EXPIRED,
}


async def check_offer_answers(url: str, answers: Sequence[OfferAnswer]) -> Counter[str]:
    """Assert that every answer to an offer is what the history says became of it (each user
    holds at most one offer per event in these tests); returns how the offers ended."""
    async with connect(url) as engine, engine.connect() as conn:
        rows = await conn.execute(
            select(BookingHistory.user_id, BookingHistory.event_id, BookingHistory.action).where(
                BookingHistory.action.in_(set(OFFER_ENDINGS.values()))
            )
        )
        endings = {(user, event): action for user, event, action in rows}
    for answer in answers:
        expected = OFFER_ENDINGS.get((answer.path, answer.status))
        assert expected is not None, answer
        assert endings.get((answer.user_id, answer.event_id)) == expected, answer
    return Counter(endings.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the service's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "JWT_", "DATABASE_"))}
    env.pop("ENVIRONMENT", None)
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A `booking-service serve` started by a test; its output goes to `log_path`."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@contextmanager
def serve(workdir: Path, *, workers: int = 1, **env: str) -> Iterator[ServerProcess]:
    """`booking-service serve` on a free port, run from `workdir` with these settings, until
    it answers. The output goes to a file (a pipe nobody reads could fill and stall it)."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [BOOKING_SERVICE, "serve", "--port", str(port), "--workers", str(workers)],
            cwd=workdir,
            env=clean_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"server exited:\n{server.output()}"
            try:
                httpx.get(f"{server.base_url}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"server did not start:\n{server.output()}"
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


@dataclass
class RedisProcess:
    """A redis-server of the test's own, on a port of its own (never the shared one)."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [require_program("redis-server"), "--port", str(self.port)]
        command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)


@contextmanager
def private_redis(directory: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
