"""Database plumbing: declarative base, engine and session factory, transactions with retries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection, CursorResult, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool, PoolResetState
from sqlalchemy.sql.expression import Executable

from booking_service import metrics
from booking_service.config import Settings
from booking_service.errors import ServiceBusy

log = logging.getLogger(__name__)

T = TypeVar("T")

# Explicit names, so migrations are stable and constraint errors say what they are.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every table: InnoDB (row locks, foreign keys) and full Unicode on MariaDB/MySQL.
MYSQL_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}

# Execution option a read-only transaction sets, so SQLite starts it DEFERRED and lets it run
# beside a writer instead of queueing for the write lock.
READ_ONLY = "booking_read_only"

# MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout. Both roll the transaction back. On a
# Galera cluster 1213 is also a certification failure: a conflicting write committed first
# through another node (at our COMMIT, or aborting us mid-transaction).
MYSQL_LOCK_CONFLICTS = {1205, 1213}
# MariaDB/MySQL errors that mean the server cannot be used right now: too many connections,
# too many for this user, cannot connect (socket/TCP), server gone away, lost connection; on
# a Galera node, 1047 "WSREP has not yet prepared node for application use" (joining, or cut
# off from the primary component) and 1927 "Connection was killed".
MYSQL_UNAVAILABLE = {1040, 1047, 1203, 1927, 2002, 2003, 2006, 2013}
# Of those, the ones where the connection itself is useless afterwards, though still open: the
# pool drops it rather than hand it out again.
MYSQL_NODE_UNUSABLE = {1047, 1927}
SQLITE_BUSY_MESSAGES = ("database is locked", "database is busy")
# Connection.info key: whether the connection's server is a Galera node (wsrep_on).
ON_CLUSTER = "booking_on_cluster"
# A causal read on a Galera node: the node first applies everything the cluster committed
# before this moment. One round trip to the cluster; see run_transaction(causal=True).
CAUSAL_READ = "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    if settings.is_sqlite:
        engine = create_async_engine(
            url,
            # A writer waits for the lock instead of failing at once (seconds).
            connect_args={"timeout": 30},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        _install_sqlite_hooks(engine)
        return engine
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_recycle=settings.db_pool_recycle_seconds,
        # Every statement sees the latest committed rows; decisions come from locked rows.
        isolation_level="READ COMMITTED",
        # Returned connections are reset by _rollback_if_open below instead.
        pool_reset_on_return=None,
    )
    event.listen(engine.sync_engine, "reset", _rollback_if_open)
    event.listen(engine.sync_engine, "connect", _note_cluster)
    event.listen(engine.sync_engine, "handle_error", _drop_unusable_connection)
    return engine


def _note_cluster(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        record.info[ON_CLUSTER] = _wsrep_on(cursor)
    finally:
        cursor.close()


def _wsrep_on(cursor: Any) -> bool:
    # SHOW, not SELECT @@wsrep_on: MySQL has no such variable, and SHOW answers on a node that
    # is not ready yet.
    cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
    row = cursor.fetchone()
    return row is not None and str(row[1]).upper() == "ON"


async def on_cluster(connection: AsyncConnection) -> bool:
    """Whether this MariaDB/MySQL connection is to a Galera node."""
    row = (await connection.exec_driver_sql("SHOW VARIABLES LIKE 'wsrep_on'")).mappings().first()
    return row is not None and str(row["Value"]).upper() == "ON"


def _drop_unusable_connection(context: ExceptionContext) -> None:
    args = getattr(context.original_exception, "args", ())
    if args and args[0] in MYSQL_NODE_UNUSABLE:
        context.is_disconnect = True


def _rollback_if_open(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    """Reset a connection returned to the pool: roll back only a transaction still open.

    SQLAlchemy's default sends a ROLLBACK on every return, a round trip after every commit.
    The server reports in each reply whether a transaction is open (SERVER_STATUS_IN_TRANS),
    and asyncmy keeps that flag: nothing open, nothing to send.
    """
    if state.terminate_only or not state.asyncio_safe:
        return  # the pool discards this connection without using it again
    driver = getattr(dbapi_connection, "driver_connection", None)
    in_transaction = getattr(driver, "get_transaction_status", None)
    if in_transaction is None or in_transaction():
        dbapi_connection.rollback()


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module: we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # FOR UPDATE compiles to nothing on SQLite: without IMMEDIATE, two transactions can read
        # the same free ticket and both sell it. IMMEDIATE takes the write lock up front.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


# Session.info keys: the events a transaction changed, who hears of them once committed, and
# the waits between retries.
CHANGED_EVENTS = "booking_changed_events"
ON_EVENTS_CHANGED = "booking_on_events_changed"
RETRY_BACKOFF = "booking_retry_backoff"
# How many times the session's last run_transaction was retried (given up included).
RETRIES_USED = "booking_retries_used"


@dataclass(frozen=True)
class RetryBackoff:
    """Wait before retry n: uniformly random in [0, min(most, first * 2**(n-1))] ("full
    jitter"), so transactions that collided do not collide again in step."""

    first_seconds: float = 0.02
    most_seconds: float = 0.5

    def delay(self, attempt: int) -> float:
        ceiling = min(self.most_seconds, self.first_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not secrecy


def create_session_factory(
    engine: AsyncEngine,
    *,
    on_events_changed: Callable[[set[int]], None] | None = None,
    retry_backoff: RetryBackoff | None = None,
) -> async_sessionmaker[AsyncSession]:
    """Sessions for the app. `on_events_changed(event_ids)` runs after every committed
    transaction that changed events (see note_event_changed), never after a rollback;
    run_transaction waits `retry_backoff` between retries."""
    info: dict[str, Any] = {RETRY_BACKOFF: retry_backoff or RetryBackoff()}
    if on_events_changed:
        info[ON_EVENTS_CHANGED] = on_events_changed
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


def note_event_changed(session: AsyncSession, event_id: int) -> None:
    """Record, for after the commit, that this transaction changes the event's row."""
    session.info.setdefault(CHANGED_EVENTS, set()).add(event_id)


def _announce_changes(session: AsyncSession) -> None:
    changed: set[int] | None = session.info.pop(CHANGED_EVENTS, None)
    listener = session.info.get(ON_EVENTS_CHANGED)
    if changed and listener is not None:
        listener(changed)


def _database_says(exc: DBAPIError, mysql_errors: Container[int], *sqlite_phrases: str) -> bool:
    """Whether the error is one of these: by MySQL/MariaDB error number, else (SQLite, which
    has no numbers for them) by a phrase of its message."""
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in mysql_errors
    text = str(exc.orig).lower()
    return any(phrase in text for phrase in sqlite_phrases)


def is_lock_conflict(exc: DBAPIError) -> bool:
    """True for errors after which the whole transaction can safely run again."""
    return _database_says(exc, MYSQL_LOCK_CONFLICTS, *SQLITE_BUSY_MESSAGES)


def is_database_unavailable(exc: DBAPIError) -> bool:
    """The database could not be reached or dropped the connection: nothing was committed
    by this attempt, and a client may retry later."""
    return exc.connection_invalidated or _database_says(
        exc, MYSQL_UNAVAILABLE, "unable to open database", "disk i/o error"
    )


def is_duplicate_key(exc: DBAPIError) -> bool:
    """A UNIQUE key refused the row."""
    return _database_says(exc, {1062}, "unique constraint failed")


def is_missing_reference(exc: DBAPIError) -> bool:
    """A FOREIGN KEY refused the row."""
    return _database_says(exc, {1452}, "foreign key constraint failed")


async def run_transaction(
    session: AsyncSession,
    work: Callable[[], Awaitable[T]],
    *,
    retries: int,
    read_only: bool = False,
    causal: bool = False,
) -> T:
    """Run `work` in one transaction, committed before this returns.

    A deadlock, lock-wait timeout or (on a Galera cluster) certification failure rolls
    everything back; the transaction is run again from the start up to `retries` times, with
    jittered backoff (the session factory's RetryBackoff), then the caller gets ServiceBusy.
    A database that cannot be reached, a cluster node not ready (or a pool with no free
    connection in time) is ServiceBusy too: a 503 the client may retry, never a 500.

    `causal`: on a Galera node, the transaction first waits until the node has applied every
    write the cluster committed before it started, so it sees what the client just did
    through another node. One round trip to the cluster; nothing elsewhere.
    """
    backoff: RetryBackoff = session.info.get(RETRY_BACKOFF) or RetryBackoff()
    attempt = 0
    while True:
        session.info.pop(CHANGED_EVENTS, None)  # what an attempt rolled back changed nothing
        try:
            async with session.begin():
                if read_only:
                    await session.connection(execution_options={READ_ONLY: True})
                if causal:
                    connection = await session.connection()
                    if connection.info.get(ON_CLUSTER):
                        await connection.exec_driver_sql(CAUSAL_READ)
                result = await work()
            session.info[RETRIES_USED] = attempt
            _announce_changes(session)
            return result
        except PoolTimeout as exc:
            session.info[RETRIES_USED] = attempt
            log.warning("no database connection free in time: %s", exc)
            raise ServiceBusy("The database is busy, please retry shortly") from exc
        except DBAPIError as exc:
            session.info[RETRIES_USED] = attempt
            if is_database_unavailable(exc):
                log.warning("database unavailable: %s", exc.orig)
                raise ServiceBusy("The database is unavailable, please retry shortly") from exc
            if not is_lock_conflict(exc):
                raise
            if attempt >= retries:
                log.warning("transaction gave up after %d retries: %s", attempt, exc.orig)
                metrics.count_gave_up()
                raise ServiceBusy() from exc
            attempt += 1
            metrics.count_lock_retry()
            log.info("lock conflict, retry %d/%d: %s", attempt, retries, exc.orig)
            await asyncio.sleep(backoff.delay(attempt))


# Rows deleted per transaction by housekeeping: short transactions, whatever the backlog.
PURGE_BATCH = 500


async def delete_in_batches(
    session: AsyncSession,
    delete_batch: Callable[[int], Awaitable[tuple[int, int]]],
    *,
    retries: int,
) -> int:
    """Run `delete_batch(limit)`, which finds up to `limit` rows and deletes them and returns
    (found, deleted), one transaction per batch until a batch finds fewer than `limit`.
    Returns how many rows were deleted in all."""
    deleted = 0
    while True:
        found, gone = await run_transaction(
            session, lambda: delete_batch(PURGE_BATCH), retries=retries
        )
        deleted += gone
        if found < PURGE_BATCH:
            return deleted


async def execute_write(session: AsyncSession, statement: Executable) -> CursorResult[Any]:
    """Run an INSERT/UPDATE/DELETE; its result carries rowcount and inserted_primary_key."""
    result = await session.execute(statement)
    assert isinstance(result, CursorResult)
    return result


async def insert_returning_id(session: AsyncSession, statement: Executable) -> int:
    """Run an INSERT of one row and return its new primary key."""
    key = (await execute_write(session, statement)).inserted_primary_key
    assert key is not None
    return int(key[0])


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[AsyncEngine]:
    """A short-lived engine without a pool, for tools and tests that work beside the service."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()
