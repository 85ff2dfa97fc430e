"""SIGTERM in the middle of a burst of bookings loses nothing that was acknowledged.

Bookings pile up behind a lock the test holds on the event row; SIGTERM arrives while they wait
inside the server (two workers, MariaDB); then the lock is let go. Every booking that was
answered 201/202 must be in the database, nothing may get a 5xx, the requests that failed must
never have reached the application, and the server must exit 0 in time.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from booking_service.bench.invariants import check_invariants
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import ACTIVE_STATUSES, Booking, BookingStatus
from tests.support.api import TokenFactory, create_event
from tests.support.databases import create_mariadb_database
from tests.support.environment import require_mariadb
from tests.support.servers import start_server
from tests.support.settings import make_settings, production_env

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

BURST = 200  # bookings, one user each
CONCURRENCY = 32  # at most this many on the wire at once
TICKETS = 12  # so acknowledgements are both 201 (ticket) and 202 (in line)
# Transactions seen waiting on the row lock before SIGTERM. One booking per transaction: many
# (pools: 10 a worker). Grouped: one transaction per worker that got requests waits (one worker
# may well have accepted every connection), and the rest queue behind it.
MIN_LOCK_WAITERS = {"1": 8, "64": 1}

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
            # InnoDB refreshes its INFORMATION_SCHEMA cache only when the last read is over
            # 0.1 s old: polling faster than that would read the first snapshot forever.
            await asyncio.sleep(0.25)


@pytest.mark.parametrize("group_max", ["1", "64"], ids=["one-per-transaction", "grouped"])
async def test_sigterm_mid_burst_keeps_every_acknowledged_booking(
    tmp_path: Path, group_max: str
) -> None:
    await require_mariadb()
    async with create_mariadb_database() as database:
        owner, *users = await create_users(database.url, BURST + 1, prefix="burst")
        tokens = TokenFactory(make_settings(database.url))
        headers = [tokens.headers(user_id) for user_id in users]
        server = await asyncio.to_thread(
            start_server,
            tmp_path,
            workers=2,
            **production_env(database, SHUTDOWN_TIMEOUT_SECONDS="20", BOOKING_GROUP_MAX=group_max),
        )
        shared_metrics = server.metrics_dir()
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
                in_flight = await wait_for_lock_waiters(database.url, MIN_LOCK_WAITERS[group_max])
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
                server.kill()

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
    logged = {line["request_id"]: line["status"] for line in server.access_lines()}
    burst_logged = {rid: status for rid, status in logged.items() if rid.startswith("burst-")}
    assert burst_logged == {f"burst-{i}": result.answers[i] for i in acknowledged}
    lines = server.json_lines()
    assert sum(line["message"] == "Application shutdown complete." for line in lines) == 2
    assert not any(line["level"] == "error" for line in lines), "nothing was cancelled"
    assert not shared_metrics.exists(), "the metrics directory is removed on exit"
