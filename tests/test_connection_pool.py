"""The MariaDB pool resets a returned connection only when a transaction is still open on it:
no ROLLBACK round trip after every commit, and never a connection handed out mid-transaction.
It pings a connection only after it sat idle: no ping round trip per transaction under load,
and a connection the server dropped while idle is replaced before anyone uses it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking_service import engine as engine_module
from booking_service.engine import create_engine
from tests.support.databases import create_mariadb_database
from tests.support.environment import require_mariadb
from tests.support.settings import make_settings

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    await require_mariadb()
    async with create_mariadb_database() as database:
        # One connection, so every checkout below gets the same one back.
        engine = create_engine(make_settings(database.url, db_pool_size=1, db_max_overflow=0))
        try:
            yield engine
        finally:
            await engine.dispose()


async def _rollbacks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SHOW SESSION STATUS LIKE 'Com_rollback'"))).one()
        await conn.commit()
    return int(row[1])


async def test_no_rollback_is_sent_after_a_commit(engine: AsyncEngine) -> None:
    before = await _rollbacks(engine)
    for _ in range(5):
        async with engine.begin() as conn:
            await conn.execute(text("SELECT COUNT(*) FROM event"))
    assert await _rollbacks(engine) == before


async def test_a_transaction_left_open_is_rolled_back_before_reuse(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        # Behind SQLAlchemy's back, so it believes nothing is open: only the server knows.
        await cursor.execute("SELECT id FROM event FOR UPDATE")
        assert raw.driver_connection.get_transaction_status()  # type: ignore[union-attr]
    async with engine.connect() as conn:
        in_transaction = (await conn.execute(text("SELECT @@in_transaction"))).scalar_one()
        await conn.commit()
    assert in_transaction == 0, "the next user of the connection starts clean"


def _count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    dialect = engine.sync_engine.dialect
    ping = dialect.do_ping
    pings: list[int] = []

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


async def _connection_id(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return int((await conn.execute(text("SELECT CONNECTION_ID()"))).scalar_one())


async def test_a_connection_back_a_moment_ago_is_not_pinged(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(engine, monkeypatch)
    for _ in range(5):
        await _connection_id(engine)
    assert pings == []


async def test_a_connection_idle_for_a_while_is_pinged_first(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.05)
    pings = _count_pings(engine, monkeypatch)
    await _connection_id(engine)
    await asyncio.sleep(0.1)
    await _connection_id(engine)
    assert pings == [1]


async def test_a_connection_dropped_while_idle_is_replaced_before_use(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.05)
    pooled = await _connection_id(engine)
    killer = create_engine(make_settings(engine.url.render_as_string(hide_password=False)))
    try:
        async with killer.begin() as conn:
            await conn.execute(text(f"KILL CONNECTION {pooled}"))
    finally:
        await killer.dispose()
    await asyncio.sleep(0.1)
    assert await _connection_id(engine) != pooled, "a new connection, and no error"
