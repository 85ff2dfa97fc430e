"""Sessions and transactions: the session factory, transactions with retries, what a database
error means. (The engine and its hooks: engine.py; the tables' base: models/base.py.)"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import Delete, Executable, Update

from booking_service.engine import CAUSAL_READ, ON_CLUSTER, READ_ONLY
from booking_service.errors import ServiceBusy

log = logging.getLogger(__name__)

T = TypeVar("T")

# MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout. Both roll the transaction back. On a
# Galera cluster 1213 is also a certification failure: a conflicting write committed first
# through another node (at our COMMIT, or aborting us mid-transaction).
MYSQL_LOCK_CONFLICTS = {1205, 1213}
# MariaDB/MySQL errors that mean the server cannot be used right now: too many connections,
# too many for this user, cannot connect (socket/TCP), server gone away, lost connection; on
# a Galera node, 1047 and 1927 (see engine.MYSQL_NODE_UNUSABLE).
MYSQL_UNAVAILABLE = {1040, 1047, 1203, 1927, 2002, 2003, 2006, 2013}
SQLITE_BUSY_MESSAGES = ("database is locked", "database is busy")
# Session.info keys: the events a transaction changed, who hears of them once committed, the
# waits between retries and who hears of retries.
CHANGED_EVENTS = "booking_changed_events"
ON_EVENTS_CHANGED = "booking_on_events_changed"
RETRY_BACKOFF = "booking_retry_backoff"
RETRY_HOOKS = "booking_retry_hooks"
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


@dataclass(frozen=True)
class RetryHooks:
    """Told of every retry after a lock conflict, and of every transaction that gave up: how
    the metrics hear of them without this module knowing about metrics."""

    retried: Callable[[], None]
    gave_up: Callable[[], None]


def create_session_factory(
    engine: AsyncEngine,
    *,
    on_events_changed: Callable[[set[int]], None] | None = None,
    retry_backoff: RetryBackoff | None = None,
    retry_hooks: RetryHooks | None = None,
) -> async_sessionmaker[AsyncSession]:
    """Sessions for the app. `on_events_changed(event_ids)` runs after every committed
    transaction that changed events (see note_event_changed), never after a rollback;
    run_transaction waits `retry_backoff` between retries and tells `retry_hooks` of them."""
    info: dict[str, Any] = {RETRY_BACKOFF: retry_backoff or RetryBackoff()}
    if on_events_changed:
        info[ON_EVENTS_CHANGED] = on_events_changed
    if retry_hooks:
        info[RETRY_HOOKS] = retry_hooks
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
    hooks: RetryHooks | None = session.info.get(RETRY_HOOKS)
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
                if hooks is not None:
                    hooks.gave_up()
                raise ServiceBusy() from exc
            attempt += 1
            if hooks is not None:
                hooks.retried()
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


# The service never loads ORM objects (every read selects columns), so an UPDATE or DELETE
# has nothing in the session to bring up to date; SQLAlchemy's default ("auto") still works
# out its WHERE clause in Python against the session on every one: about 0.35 ms of CPU a
# statement, measured, more than the rest of a lone booking's counter update.
NO_SESSION_SYNC: Mapping[str, Any] = {"synchronize_session": False}
NO_OPTIONS: Mapping[str, Any] = {}


async def execute_write(session: AsyncSession, statement: Executable) -> CursorResult[Any]:
    """Run an INSERT/UPDATE/DELETE, the one way every write runs; its result carries rowcount
    and inserted_primary_key."""
    options = NO_SESSION_SYNC if isinstance(statement, Update | Delete) else NO_OPTIONS
    result = await session.execute(statement, execution_options=options)
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
