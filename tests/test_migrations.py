"""The migrations build exactly the models' schema, and run down and up again cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from booking_service import migrations
from booking_service.db import Base
from tests.support import (
    BOOKING_SERVICE,
    Database,
    clean_env,
    connect,
    create_mariadb_database,
    create_sqlite_database,
    require_mariadb,
)


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
