"""One migrating process at a time, however many replicas start at once on however many servers.

Every `serve` migrates before its workers start, so replicas started together (`docker compose
up --scale api=3`, a rolling deploy) race to run the same DDL. They take turns under a lock per
database; whoever gets it second finds the schema at head and has nothing to do.

- One MariaDB/MySQL server: `GET_LOCK`, which the server frees if the holder dies.
- A Galera cluster: `GET_LOCK` holds only on the node that takes it, so a lease row instead.
  Its INSERT is certified by the whole cluster, so exactly one process holds it; the holder
  beats it every few seconds, and a lease whose beat stops for LEASE_STALE_SECONDS (a killed
  holder) is taken over. Waiters judge staleness by their own clock, never another node's.
  Taking the lease means this node has applied the release, so also every DDL before it.
- SQLite: one file, one process at a time already (the migration holds the write lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import CreateTable

from booking_service.db import is_duplicate_key, is_lock_conflict
from booking_service.engine import CAUSAL_READ, on_cluster

log = logging.getLogger(__name__)

NAMED_LOCK = "LEFT(CONCAT('booking_service.migrate.', DATABASE()), 64)"
LOCK_WAIT_SECONDS = 600
# Not a table of the models: it must exist before the first migration, and outlives them all.
LEASE_TABLE = "migration_lease"
lease = Table(
    LEASE_TABLE,
    MetaData(),
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("beat", BigInteger, nullable=False),
    mysql_engine="InnoDB",
)
LEASE_NAME = "alembic"
LEASE_BEAT_SECONDS = 2.0
LEASE_STALE_SECONDS = 30.0
LEASE_POLL_SECONDS = 0.25


@contextlib.asynccontextmanager
async def migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the database's migration lock (see the module's docstring) while the body runs."""
    if engine.dialect.name != "mysql":
        yield
        return
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        if await on_cluster(connection):
            async with _cluster_lease(engine, connection):
                yield
        else:
            async with _named_lock(connection):
                yield


@contextlib.asynccontextmanager
async def _named_lock(connection: AsyncConnection) -> AsyncIterator[None]:
    acquired = await connection.scalar(
        text(f"SELECT GET_LOCK({NAMED_LOCK}, :wait)"), {"wait": LOCK_WAIT_SECONDS}
    )
    if acquired != 1:
        raise RuntimeError("another process kept the migration lock for too long")
    try:
        yield
    finally:
        await connection.execute(text(f"SELECT RELEASE_LOCK({NAMED_LOCK})"))


@contextlib.asynccontextmanager
async def _cluster_lease(engine: AsyncEngine, connection: AsyncConnection) -> AsyncIterator[None]:
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"[:128]
    # IF NOT EXISTS: replicas on other nodes create it at the same moment.
    await connection.execute(CreateTable(lease, if_not_exists=True))
    await _take_lease(connection, holder)
    lost = asyncio.Event()
    beating = asyncio.create_task(_beat(engine, holder, lost))
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        await connection.execute(
            delete(lease).where(lease.c.name == LEASE_NAME, lease.c.holder == holder)
        )
    if lost.is_set():
        raise RuntimeError("the migration lease was taken over while migrating; check the schema")


async def _take_lease(connection: AsyncConnection, holder: str) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    seen: tuple[str, int] | None = None
    seen_since = time.monotonic()
    while True:
        try:
            await connection.execute(insert(lease).values(name=LEASE_NAME, holder=holder, beat=0))
            return
        except DBAPIError as exc:
            # Held (the row is here), or another node's INSERT won certification (1213).
            if not (is_duplicate_key(exc) or is_lock_conflict(exc)):
                raise
        await connection.exec_driver_sql(CAUSAL_READ)  # the holder's latest beat, not a stale one
        row = (
            await connection.execute(
                select(lease.c.holder, lease.c.beat).where(lease.c.name == LEASE_NAME)
            )
        ).first()
        current = (row.holder, row.beat) if row is not None else None
        now = time.monotonic()
        if current != seen:
            seen, seen_since = current, now
        elif current is not None and now - seen_since > LEASE_STALE_SECONDS:
            log.warning("migration lease of %s stopped beating; taking it over", current[0])
            await connection.execute(
                delete(lease).where(
                    lease.c.name == LEASE_NAME,
                    lease.c.holder == current[0],
                    lease.c.beat == current[1],
                )
            )
            continue
        if now > deadline:
            raise RuntimeError("another process kept the migration lease for too long")
        if seen_since == now and current is not None:
            log.info("waiting for %s to finish migrating", current[0])
        await asyncio.sleep(LEASE_POLL_SECONDS)


async def _beat(engine: AsyncEngine, holder: str, lost: asyncio.Event) -> None:
    """Show waiters the holder is alive, on a connection of its own (the migration's is busy)."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        while True:
            await asyncio.sleep(LEASE_BEAT_SECONDS)
            try:
                result = await connection.execute(
                    update(lease)
                    .where(lease.c.name == LEASE_NAME, lease.c.holder == holder)
                    .values(beat=lease.c.beat + 1)
                )
            except DBAPIError as exc:  # a missed beat is harmless; the next one may land
                log.warning("migration lease beat failed: %s", exc.orig)
                continue
            if result.rowcount == 0:
                log.error("the migration lease was taken over by another process")
                lost.set()
                return
