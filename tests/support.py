"""Helpers shared by the tests: databases, users, tokens and the booking invariants."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
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
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SERVICE_COMMAND = str(Path(sys.executable).with_name("booking-service"))
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


async def require_mariadb() -> None:
    """Skip the calling test where no MariaDB answers, but fail under CI=true."""
    reason = await mariadb_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"MariaDB is required under CI=true: {reason}")
    pytest.skip(f"MariaDB tests skipped: {reason}")


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


async def require_redis() -> str:
    """The test Redis URL; skip where none answers, but fail under CI=true."""
    from redis.asyncio import Redis

    url = redis_url()
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # any failure to reach it is a reason to skip
        reason = f"no Redis at {url} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is required under CI=true: {reason}")
        pytest.skip(f"Redis tests skipped: {reason}")
    finally:
        await client.aclose()
    return url


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
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh app built from these settings, its lifespan running."""
    from booking_service.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


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
      user was promoted before them or had left before them.
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(**settings: str) -> dict[str, str]:
    """This process's environment without any service setting, plus the given ones."""
    names = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(settings)
    return env


@dataclass
class ServerProcess:
    """A real `booking-service serve` process; its output is collected line by line."""

    process: subprocess.Popen[str]
    base_url: str
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def json_lines(self) -> list[dict[str, Any]]:
        """Every output line parsed: in production every line is JSON, uvicorn's included."""
        return [json.loads(line) for line in self.output().splitlines()]

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.json_lines() if line["logger"] == "booking_service.access"]

    def metrics_dir(self) -> Path:
        """The directory serve made for the workers' metrics, as it logged it."""
        for line in self.json_lines():
            if match := re.search(r"share their metrics through (\S+)", line["message"]):
                return Path(match.group(1))
        raise AssertionError("serve names the directory the workers share their metrics through")

    def wait_for_lines(self, matches: Callable[[str], bool], count: int, timeout: float) -> None:
        """Block until `count` output lines satisfy `matches`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for line in self.lines if matches(line)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected output did not come; output so far:\n{self.output()}"
                self._changed.wait(left)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def production_env(database: Database, **settings: str) -> dict[str, str]:
    """Settings for a served test instance as production runs it (JSON logs)."""
    return {
        "DATABASE_URL": database.url,
        "ENVIRONMENT": "prod",
        "JWT_SECRET": TEST_SECRET,
        "RATE_LIMIT_ENABLED": "false",
        # Small pools: the test MariaDB is shared with every other test's connections.
        "DB_POOL_SIZE": "5",
        "DB_MAX_OVERFLOW": "5",
        **settings,
    }


def start_server(
    cwd: Path, *, workers: int = 1, timeout: float = 60, **settings: str
) -> ServerProcess:
    """Start `booking-service serve` on a free port and wait until /health answers."""
    port = free_port()
    process = subprocess.Popen(
        [SERVICE_COMMAND, "serve", "--port", str(port), "--workers", str(workers)],
        cwd=cwd,
        env=service_env(**settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = ServerProcess(process, f"http://127.0.0.1:{port}")
    threading.Thread(target=server._collect, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            process.wait()
            raise AssertionError(f"server exited at start:\n{server.output()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"server did not start:\n{server.output()}")
        time.sleep(0.1)
    # /health answered from one worker: wait for the others too.
    server.wait_for_lines(lambda line: "Application startup complete" in line, workers, timeout)
    return server
