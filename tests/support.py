"""Helpers shared by the tests: databases, users, tokens and the booking invariants."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from booking_service import migrations
from booking_service.bench.invariants import check_invariants as check_invariants
from booking_service.bench.seed import create_users as create_users
from booking_service.config import Settings
from booking_service.db import connect as connect
from booking_service.main import create_app
from booking_service.models import Booking, BookingHistory, BookingStatus, HistoryAction
from booking_service.models.base import Base
from booking_service.security import TokenCodec

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
    "health",
    "ready",
    "metrics",
    "accept_offer",
    "decline_offer",
    "list_my_history",
    "update_event",
    "close_event",
    "cancel_event",
    "list_event_bookings",
    "list_event_history",
    "check_in_ticket",
    "transfer_ticket",
}
# For operators, not clients: never rate limited, and not about bookings.
OPERATIONS_ROUTES = {"health", "ready", "metrics"}
# The installed command, as a user runs it.
BOOKING_SERVICE = str(Path(sys.executable).with_name("booking-service"))
DEFAULT_MARIADB_SERVER = "mysql+asyncmy://root@127.0.0.1:3306/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The header on an answer replayed for a retried Idempotency-Key.
REPLAYED = "idempotent-replayed"


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
        # Tests expire offers when they choose (app_state(app).offer_sweeper.sweep()); the
        # background sweep has a test of its own.
        "offer_sweep_interval_seconds": 3600,
        # Tests read /status right after writing; the poll cache has tests of its own.
        "status_cache_seconds": 0,
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


def require_redis(url: str | None = None) -> str:
    """The Redis URL (TEST_REDIS_URL by default); skip the calling test where no Redis answers
    there, but fail under CI=true."""
    url = url or redis_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    reason = None
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis at {url} ({type(exc).__name__}: {exc})"
    finally:
        client.close()
    skip_unless_available("Redis", reason)
    return url


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


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh app built from these settings, its lifespan running."""
    async with started_app(settings) as app, http_client(app) as http:
        yield http


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


async def wait_past(moment: datetime) -> None:
    """Let the clock pass `moment` (an offer's deadline, say): time itself is what is tested."""
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.01)


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


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any service setting, plus the given ones."""
    names = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(settings)
    return env


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
        "STATUS_CACHE_SECONDS": "0",
        **settings,
    }


@dataclass
class ServerProcess:
    """A real `booking-service serve` process. Its output goes to `log_path`: a file, since a
    pipe nobody reads could fill up and stall the server."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

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
        while sum(1 for line in self.output().splitlines() if matches(line)) < count:
            assert time.monotonic() < deadline, (
                f"expected output did not come; output so far:\n{self.output()}"
            )
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as an orchestrator stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the server and its workers: killing only the supervisor would orphan the
        workers, still holding their database connections. It runs in a session of its own,
        so its process group is exactly what this test started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_server(
    workdir: Path, *, workers: int = 1, timeout: float = 60, **settings: str
) -> ServerProcess:
    """Start `booking-service serve` on a free port, from `workdir`, with these settings (and
    none from this process's environment); return once every worker has started."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [BOOKING_SERVICE, "serve", "--port", str(port), "--workers", str(workers)],
            cwd=workdir,
            env=clean_env(**settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", port, process, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
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


@contextmanager
def serve(workdir: Path, *, workers: int = 1, **settings: str) -> Iterator[ServerProcess]:
    """A started server (see start_server), stopped on the way out."""
    server = start_server(workdir, workers=workers, **settings)
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def serve_fresh(backend: str, workdir: Path, **settings: str) -> AsyncIterator[ServerProcess]:
    """`booking-service serve` (see start_server) on a fresh database of `backend`: a SQLite
    file in `workdir`, or a new MariaDB database (skipped where none answers, see
    require_mariadb)."""
    if backend == "sqlite":
        with serve(workdir, **settings) as running:
            yield running
        return
    await require_mariadb()
    async with create_mariadb_database() as database:
        with serve(workdir, DATABASE_URL=database.url, **settings) as running:
            yield running


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

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, and nothing ever answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

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


@dataclass(frozen=True)
class ReceivedWebhook:
    headers: dict[str, str]  # lower-case names
    body: bytes


class WebhookReceiver:
    """A webhook receiver on loopback, in a thread: answers `statuses` in turn (then 200 for
    ever), each after the matching pause in `delays` (seconds; none once they run out), and
    records every POST it gets."""

    def __init__(self, statuses: Sequence[int] = (), delays: Sequence[float] = ()) -> None:
        self._statuses = list(statuses)
        self._delays = list(delays)
        self._lock = threading.Lock()
        self.received: list[ReceivedWebhook] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append(
                        ReceivedWebhook({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                    delay = receiver._delays.pop(0) if receiver._delays else 0.0
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def posts(self) -> list[ReceivedWebhook]:
        with self._lock:
            return list(self.received)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


async def eventually(condition: Any, *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll the async `condition()` until it returns something truthy, and return that; fail
    after `timeout` seconds (a bound on a hang, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        await asyncio.sleep(0.05)
