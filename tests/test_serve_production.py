"""`booking-service serve --workers 2` as production runs it: real processes on MariaDB.

Metrics add up over the workers, logs are JSON lines, and SIGTERM in the middle of a burst of
bookings loses nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text

from booking_service.models import ACTIVE_STATUSES, Booking, BookingStatus
from tests.conftest import make_settings
from tests.support import (
    SERVICE_COMMAND,
    TEST_SECRET,
    Database,
    ServerProcess,
    TokenFactory,
    check_invariants,
    connect,
    create_event,
    create_mariadb_database,
    create_users,
    free_port,
    require_mariadb,
    service_env,
    start_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

METRICS_DIR_LINE = re.compile(r"share their metrics through (\S+)")


def production_settings(database: Database, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database.url,
        "ENVIRONMENT": "prod",
        "JWT_SECRET": TEST_SECRET,
        "RATE_LIMIT_ENABLED": "false",
        **extra,
    }


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.output().splitlines()]


def access_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [line for line in json_lines(server) if line["logger"] == "booking_service.access"]


def metrics_dir(server: ServerProcess) -> Path:
    for line in json_lines(server):
        if match := METRICS_DIR_LINE.search(line["message"]):
            return Path(match.group(1))
    raise AssertionError("serve names the directory the workers share their metrics through")


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample(
    values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
async def two_workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, Database]]:
    await require_mariadb()
    async with create_mariadb_database() as database:
        server = await asyncio.to_thread(
            start_server,
            tmp_path_factory.mktemp("serve"),
            workers=2,
            **production_settings(database),
        )
        try:
            yield server, database
        finally:
            server.stop()


async def fresh_get(base_url: str, path: str) -> httpx.Response:
    # A new connection each time, so that either worker may answer.
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.get(path)


async def test_metrics_add_up_every_worker(two_workers: tuple[ServerProcess, Database]) -> None:
    server, database = two_workers
    owner, *users = await create_users(database.url, 41, prefix="metrics")
    tokens = TokenFactory(make_settings(database.url))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        event_id = await create_event(http, tokens.headers(owner), tickets=25)
        assert (await http.get(f"/status/{event_id}", headers=tokens.headers(owner))).is_success

    async def book(user_id: int) -> int:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            response = await http.post(
                "/book", json={"eventId": event_id}, headers=tokens.headers(user_id)
            )
            return response.status_code

    statuses = await asyncio.gather(*(book(user_id) for user_id in users))
    assert sorted(statuses) == [201] * 25 + [202] * 15

    for _ in range(6):  # whichever worker answers reports the sum over both
        response = await fresh_get(server.base_url, "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        values = samples(response.text)
        assert sample(values, "booking_outcomes_total", outcome="booked") == 25
        assert sample(values, "booking_outcomes_total", outcome="waitlisted") == 15
        book_count = "http_request_duration_seconds_count"
        assert sample(values, book_count, method="POST", route="/book", status="201") == 25
        assert sample(values, book_count, method="POST", route="/book", status="202") == 15
        assert (
            sample(values, book_count, method="GET", route="/status/{eventId}", status="200") == 1
        )

    files = {path.name for path in metrics_dir(server).glob("*.db")}
    pids = {match.group(1) for name in files if (match := re.search(r"_(\d+)\.db$", name))}
    assert len(pids) >= 2, f"every worker writes its own files: {sorted(files)}"


async def test_every_line_is_json_and_every_request_has_one(
    two_workers: tuple[ServerProcess, Database],
) -> None:
    server, _ = two_workers
    ids = [f"json-line-{i}" for i in range(6)]
    for request_id in ids:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            response = await http.get("/ready", headers={"X-Request-ID": request_id})
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
    await asyncio.to_thread(
        server.wait_for_lines, lambda line: '"json-line-5"' in line, count=1, timeout=10
    )
    lines = access_lines(server)  # json.loads of every output line, uvicorn's included
    mine = [line for line in lines if line["request_id"] in ids]
    assert [line["request_id"] for line in mine] == ids
    for line in mine:
        assert line["method"] == "GET"
        assert line["route"] == "/ready"
        assert line["status"] == 200
        assert line["duration_ms"] >= 0


def test_memory_rate_limits_with_several_workers_warn(tmp_path: Path) -> None:
    # The database is unreachable, so serve stops right after its start-up checks.
    unreachable = f"mysql+asyncmy://root@127.0.0.1:{free_port()}/nothing"
    outputs = {}
    for workers in (1, 3):
        result = subprocess.run(
            [SERVICE_COMMAND, "serve", "--workers", str(workers), "--port", str(free_port())],
            env=service_env(
                DATABASE_URL=unreachable,
                RATE_LIMIT_ENABLED="true",
                RATE_LIMIT_STORAGE_URL="memory://",
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        outputs[workers] = result.stderr
    assert "memory:// with 3 workers" in outputs[3]
    assert "up to 3 times RATE_LIMIT" in outputs[3]
    assert "memory://" not in outputs[1]


# The shutdown test: bookings pile up behind a lock the test holds on the event row, SIGTERM
# arrives while they wait inside the server, then the lock is let go.
BURST = 200  # bookings, one user each
CONCURRENCY = 32  # at most this many on the wire at once
TICKETS = 12  # so acknowledgements are both 201 (ticket) and 202 (in line)
MIN_IN_FLIGHT = 12  # bookings seen waiting in the database before SIGTERM is sent

LOCK_WAITERS = text(
    "SELECT COUNT(*) FROM information_schema.INNODB_TRX t"
    " JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id"
    " WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()"
)


@dataclass
class BurstResult:
    answers: dict[int, int] = field(default_factory=dict)  # request index -> HTTP status
    failures: dict[int, str] = field(default_factory=dict)  # request index -> transport error


async def fire_burst(
    base_url: str, event_id: int, headers: list[dict[str, str]], result: BurstResult
) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:

        async def book(index: int) -> None:
            async with gate:
                try:
                    response = await http.post(
                        "/book",
                        json={"eventId": event_id},
                        headers={**headers[index], "X-Request-ID": f"burst-{index}"},
                    )
                except httpx.TransportError as exc:
                    result.failures[index] = type(exc).__name__
                else:
                    result.answers[index] = response.status_code

        await asyncio.gather(*(book(index) for index in range(len(headers))))


async def wait_for_lock_waiters(url: str, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    async with connect(url) as engine, engine.connect() as conn:
        while True:
            waiting = int((await conn.execute(LOCK_WAITERS)).scalar_one())
            await conn.rollback()
            if waiting >= at_least:
                return waiting
            assert time.monotonic() < deadline, f"only {waiting} bookings reached the lock"
            await asyncio.sleep(0.05)


async def test_sigterm_mid_burst_keeps_every_acknowledged_booking(tmp_path: Path) -> None:
    await require_mariadb()
    async with create_mariadb_database() as database:
        owner, *users = await create_users(database.url, BURST + 1, prefix="burst")
        tokens = TokenFactory(make_settings(database.url))
        headers = [tokens.headers(user_id) for user_id in users]
        server = await asyncio.to_thread(
            start_server,
            tmp_path,
            workers=2,
            **production_settings(database, SHUTDOWN_TIMEOUT_SECONDS="20"),
        )
        shared_metrics = metrics_dir(server)
        assert shared_metrics.is_dir()
        result = BurstResult()
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                event_id = await create_event(http, tokens.headers(owner), tickets=TICKETS)
            async with connect(database.url) as engine, engine.connect() as holder:
                await holder.execute(
                    text("SELECT id FROM event WHERE id = :id FOR UPDATE"), {"id": event_id}
                )
                burst = asyncio.create_task(fire_burst(server.base_url, event_id, headers, result))
                in_flight = await wait_for_lock_waiters(database.url, MIN_IN_FLIGHT)
                sigterm_at = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                # Both workers have stopped accepting before the waiting bookings may go on.
                await asyncio.to_thread(
                    server.wait_for_lines, lambda line: "Shutting down" in line, 2, 30
                )
                await holder.rollback()
            await burst
            exit_code = await asyncio.to_thread(server.process.wait, 60)
            elapsed = time.monotonic() - sigterm_at
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()

        async with connect(database.url) as engine, engine.connect() as conn:
            rows = (await conn.execute(select(Booking.user_id, Booking.status))).all()
        held = {row.user_id: row.status for row in rows if row.status in ACTIVE_STATUSES}
        booked_users = {row.user_id for row in rows}
        reports = await check_invariants(database.url, [event_id])

    acknowledged = {i for i, status in result.answers.items() if status in (201, 202)}
    tickets = sum(1 for status in result.answers.values() if status == 201)
    print(
        f"\nshutdown mid-burst: {len(acknowledged)} acknowledged ({tickets} tickets, "
        f"{len(acknowledged) - tickets} in line), {len(result.failures)} refused "
        f"({sorted(set(result.failures.values()))}), {in_flight} waiting in the database at "
        f"SIGTERM, exit {exit_code} after {elapsed:.2f}s"
    )
    assert exit_code == 0
    assert elapsed < 20, "left in time (SHUTDOWN_TIMEOUT_SECONDS=20 never had to cut anything)"
    assert len(result.answers) + len(result.failures) == BURST
    assert set(result.answers.values()) <= {201, 202}, "no 5xx, nothing else either"
    assert len(acknowledged) >= in_flight, "bookings in flight at SIGTERM were all finished"
    assert result.failures, "after SIGTERM new connections were refused"
    for index in acknowledged:
        expected = (
            BookingStatus.CONFIRMED if result.answers[index] == 201 else BookingStatus.WAITLISTED
        )
        assert held.get(users[index]) == expected, f"acknowledged booking {index} is missing"
    for index in result.failures:
        assert users[index] not in booked_users, f"refused request {index} still booked"
    assert reports[event_id].confirmed == tickets
    assert reports[event_id].waiting == len(acknowledged) - tickets

    # The server saw exactly the acknowledged requests: a refused one never reached the app.
    logged = {line["request_id"]: line["status"] for line in access_lines(server)}
    burst_logged = {rid: status for rid, status in logged.items() if rid.startswith("burst-")}
    assert burst_logged == {f"burst-{i}": result.answers[i] for i in acknowledged}
    lines = json_lines(server)
    assert sum(line["message"] == "Application shutdown complete." for line in lines) == 2
    assert not any(line["level"] == "error" for line in lines), "nothing was cancelled"
    assert not shared_metrics.exists(), "the metrics directory is removed on exit"
