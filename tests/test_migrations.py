"""The migrations build exactly the models' schema, and run down and up again cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from booking_service import migrations
from booking_service.db import connect
from booking_service.models import Booking, BookingHistory, Event, User
from booking_service.models.base import Base
from booking_service.models.types import utcnow
from tests.support.databases import Database, create_mariadb_database, create_sqlite_database
from tests.support.environment import require_mariadb
from tests.support.servers import BOOKING_SERVICE
from tests.support.settings import clean_env


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
async def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        async with create_sqlite_database(tmp_path) as database:
            yield database
        return
    await require_mariadb()
    async with create_mariadb_database() as database:
        yield database


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_without_drift(fresh_database: Database) -> None:
    url = fresh_database.url
    async with connect(url) as engine, engine.connect() as conn:
        assert await conn.run_sync(_tables) == set(Base.metadata.tables)
        assert await conn.run_sync(_diff) == []

    await asyncio.to_thread(migrations.downgrade, url, "base")
    async with connect(url) as engine, engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()

    await asyncio.to_thread(migrations.upgrade, url)
    async with connect(url) as engine, engine.connect() as conn:
        assert await conn.run_sync(_tables) == set(Base.metadata.tables)
        assert await conn.run_sync(_diff) == []


def test_migrations_ship_inside_the_package() -> None:
    # `pip install .` (not editable) must still be able to migrate: the wheel carries them.
    location = migrations.script_location()
    assert (location / "env.py").exists()
    assert list((location / "versions").glob("*.py"))


@pytest.mark.mariadb
async def test_replicas_migrating_at_once_take_turns() -> None:
    # `docker compose up --scale api=3` starts three `serve`s that each migrate first. Without
    # the migration lock, two of them fail on "Table 'user' already exists".
    await require_mariadb()
    async with create_mariadb_database() as database:
        await asyncio.to_thread(migrations.downgrade, database.url, "base")
        procs = [
            await asyncio.create_subprocess_exec(
                BOOKING_SERVICE,
                "migrate",
                env=clean_env(DATABASE_URL=database.url),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for _ in range(4)
        ]
        outputs = [(await proc.communicate())[0].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * 4, "\n".join(outputs)
        async with connect(database.url) as engine, engine.connect() as conn:
            assert await conn.run_sync(_tables) == set(Base.metadata.tables)
            assert await conn.run_sync(_diff) == []


async def _insert(url: str, table: Any, **values: Any) -> int:
    async with connect(url) as engine, engine.begin() as conn:
        result = await conn.execute(insert(table).values(**values))
        return int(result.inserted_primary_key[0])


async def test_the_new_rules_are_enforced_by_the_database(fresh_database: Database) -> None:
    """The CHECKs of offers, event states and history exist on both databases (Alembic does
    not compare CHECK constraints, so the drift test above cannot see them). Each row breaks
    one rule, and the database must name that rule."""
    url = fresh_database.url
    owner = await _insert(url, User, username="owner", password_hash="x")
    event = await _insert(url, Event, owner_id=owner, name="Gig", capacity=2, available=2)
    now = utcnow()
    claim = {"event_id": event, "user_id": owner, "created_at": now, "line_seq": 1}
    offered = {**claim, "status": "offered", "active": 1, "offer_expires_at": now}
    booking = await _insert(url, Booking, **offered)
    entry = {"booking_id": booking, "event_id": event, "user_id": owner, "created_at": now}
    new_event = {"owner_id": owner, "name": "x", "capacity": 2, "available": 2}
    refused: list[tuple[str, Any, dict[str, Any]]] = [
        ("ck_booking_offered_has_deadline", Booking, {**offered, "offer_expires_at": None}),
        ("ck_booking_active_matches_status", Booking, {**offered, "active": None}),
        ("ck_booking_active_matches_status", Booking, {**claim, "status": "expired", "active": 1}),
        ("ck_booking_status_known", Booking, {**claim, "status": "lottery", "active": None}),
        ("ck_event_state_known", Event, {**new_event, "state": "paused"}),
        ("ck_event_waitlist_mode_known", Event, {**new_event, "waitlist_mode": "raffle"}),
        ("ck_event_offer_seconds_in_range", Event, {**new_event, "offer_seconds": 0}),
        ("ck_event_offered_count_in_range", Event, {**new_event, "offered_count": 1}),
        ("ck_booking_history_action_known", BookingHistory, {**entry, "action": "won"}),
    ]
    for rule, table, values in refused:
        with pytest.raises(DBAPIError, match=rule):
            await _insert(url, table, **values)
    await _insert(url, BookingHistory, **entry, action="offered")


async def test_downgrading_turns_open_offers_into_tickets(fresh_database: Database) -> None:
    url = fresh_database.url
    users = [await _insert(url, User, username=f"u{i}", password_hash="x") for i in range(4)]
    event = await _insert(
        url,
        Event,
        owner_id=users[0],
        name="Gig",
        capacity=2,
        available=0,
        offered_count=1,
        waiting_count=1,
        next_line_seq=4,
        waitlist_mode="offer",
    )
    now = utcnow()
    claims = [
        {"status": "confirmed", "active": 1, "confirmed_at": now},
        {"status": "offered", "active": 1, "line_seq": 1, "offer_expires_at": now},
        {"status": "waitlisted", "active": 1, "line_seq": 2},
        {"status": "expired", "active": None, "line_seq": 3, "ended_at": now},
    ]
    for user, claim in zip(users, claims, strict=True):
        await _insert(url, Booking, event_id=event, user_id=user, created_at=now, **claim)

    await asyncio.to_thread(migrations.downgrade, url, "20261124_0002")
    async with connect(url) as engine, engine.connect() as conn:
        statuses = (await conn.execute(text("SELECT status FROM booking ORDER BY id"))).scalars()
        assert list(statuses) == ["confirmed", "confirmed", "waitlisted", "left"]
        counts = (await conn.execute(text("SELECT available, waiting_count FROM event"))).one()
        assert tuple(counts) == (0, 1)
    await asyncio.to_thread(migrations.upgrade, url)
    await check_invariants_without_history(url, event)


async def check_invariants_without_history(url: str, event_id: int) -> None:
    """The counters after a round trip down and up (the history did not survive the trip)."""
    async with connect(url) as engine, engine.connect() as conn:
        event = (await conn.execute(select(Event).where(Event.id == event_id))).one()
        assert (event.capacity, event.available, event.offered_count) == (2, 0, 0)
        assert event.waitlist_mode == "instant"
