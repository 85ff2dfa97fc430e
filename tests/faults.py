"""Faults raised by the database itself, for tests of what one failure may touch: triggers
that fail chosen rows' statements, and a lock held against writers."""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from booking_service.db import connect
from tests.support.databases import Database


class Fault(enum.Enum):
    # An integrity error that is no duplicate key and no missing reference: nobody foresaw it.
    UNFORESEEN = "unforeseen"
    # A lock wait timeout, on every attempt: retried, then given up (503).
    LOCK_TIMEOUT = "lock timeout"
    # An error of no known kind (MariaDB's generic SIGNAL, 1644). SQLite can raise nothing but
    # an integrity error from a trigger: there it is UNFORESEEN.
    UNKNOWN = "unknown"


# SQLite has no error numbers: its lock conflicts are known by their message.
SQLITE_MESSAGES = {
    Fault.UNFORESEEN: "injected failure",
    Fault.LOCK_TIMEOUT: "database is locked",
    Fault.UNKNOWN: "injected failure",
}
# (SQLSTATE, error number, message) as MariaDB reports them.
MARIADB_SIGNALS = {
    Fault.UNFORESEEN: ("23000", 1048, "injected failure"),
    Fault.LOCK_TIMEOUT: ("HY000", 1205, "Lock wait timeout exceeded; try restarting transaction"),
    Fault.UNKNOWN: ("HY000", 1644, "injected failure"),
}


def sqlite_path(database: Database) -> str:
    path = make_url(database.url).database
    assert path is not None
    return path


@asynccontextmanager
async def failing_rows(
    database: Database, name: str, *, table: str, operation: str, when: str, fault: Fault
) -> AsyncIterator[None]:
    """While inside, `operation` (INSERT, UPDATE or DELETE) on rows of `table` for which the
    SQL condition `when` holds (on NEW or OLD) fails with `fault`. The SQL is the test's own."""
    if database.backend == "sqlite":
        trigger = (
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} WHEN {when}"
            f" BEGIN SELECT RAISE(ABORT, '{SQLITE_MESSAGES[fault]}'); END"
        )
        with sqlite3.connect(sqlite_path(database)) as conn:
            conn.execute(trigger)
        try:
            yield
        finally:
            with sqlite3.connect(sqlite_path(database)) as conn:
                conn.execute(f"DROP TRIGGER {name}")
        return
    state, errno, message = MARIADB_SIGNALS[fault]
    trigger = (
        f"CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW BEGIN IF {when}"
        f" THEN SIGNAL SQLSTATE '{state}' SET MYSQL_ERRNO = {errno}, MESSAGE_TEXT = '{message}';"
        " END IF; END"
    )
    async with connect(database.url) as engine:
        async with engine.begin() as conn:
            await conn.execute(text(trigger))
        try:
            yield
        finally:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP TRIGGER {name}"))


@asynccontextmanager
async def event_locked(database: Database, event_id: int) -> AsyncIterator[None]:
    """Hold the event's row (on SQLite, the whole database) against writers while inside."""
    if database.backend == "sqlite":
        conn = sqlite3.connect(sqlite_path(database), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    async with connect(database.url) as engine, engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("SELECT id FROM event WHERE id = :id FOR UPDATE"), {"id": event_id})
        try:
            yield
        finally:
            await transaction.rollback()
