"""The engine: connection pool, per-dialect hooks (SQLite's BEGIN IMMEDIATE, MariaDB's reset
and Galera detection)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState

from booking_service.config import Settings

# Execution option a read-only transaction sets, so SQLite starts it DEFERRED and lets it run
# beside a writer instead of queueing for the write lock.
READ_ONLY = "booking_read_only"

# MariaDB errors after which the connection itself is useless, though still open: on a Galera
# node, 1047 "WSREP has not yet prepared node for application use" (joining, or cut off from
# the primary component) and 1927 "Connection was killed". The pool drops it rather than hand
# it out again.
MYSQL_NODE_UNUSABLE = {1047, 1927}
# Connection.info key: whether the connection's server is a Galera node (wsrep_on).
ON_CLUSTER = "booking_on_cluster"
# A causal read on a Galera node: the node first applies everything the cluster committed
# before this moment. One round trip to the cluster; see run_transaction(causal=True).
CAUSAL_READ = "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1"
# SHOW, not SELECT @@wsrep_on: MySQL has no such variable, and SHOW answers on a node that is
# not ready yet. Its row is (Variable_name, Value).
WSREP_ON_QUERY = "SHOW VARIABLES LIKE 'wsrep_on'"
# A pooled connection idle this long is pinged before it is handed out; one back sooner is
# not (see _ping_after_idle).
PING_AFTER_IDLE_SECONDS = 1.0
# ConnectionRecord.info key: when the connection last went back to the pool (monotonic).
RETURNED_AT = "booking_returned_at"
# What one SQLite connection may hold, in a worker that keeps up to DB_POOL_SIZE of them open.
# SQLite's default page cache is 2 MiB per connection and Python's sqlite3 keeps 128 prepared
# statements per connection, each `IN (?, ...)` length a statement of its own (~200 bytes per
# item: 50 KiB for 256 ids); a worker polled by 100,000 users held 11 connections of 3 MiB
# each, and 7 MiB each was in reach. Readers lose little: under WAL a connection drops its
# cache whenever another one has committed, and the file's pages stay in the OS's cache.
SQLITE_PAGE_CACHE_KIB = 512
SQLITE_CACHED_STATEMENTS = 32


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    if settings.is_sqlite:
        engine = create_async_engine(
            url,
            # A writer waits for the lock instead of failing at once (seconds).
            connect_args={"timeout": 30, "cached_statements": SQLITE_CACHED_STATEMENTS},
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
        pool_recycle=settings.db_pool_recycle_seconds,
        # Every statement sees the latest committed rows; decisions come from locked rows.
        isolation_level="READ COMMITTED",
        # Returned connections are reset by _rollback_if_open below instead.
        pool_reset_on_return=None,
    )
    event.listen(engine.sync_engine, "reset", _rollback_if_open)
    event.listen(engine.sync_engine, "do_connect", _connect_or_lost)
    event.listen(engine.sync_engine, "connect", _note_cluster)
    _install_idle_ping(engine)
    event.listen(engine.sync_engine, "handle_error", _drop_unusable_connection)
    return engine


def _install_idle_ping(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only when it sat idle, instead of SQLAlchemy's
    pool_pre_ping on every checkout: under load connections come back within milliseconds,
    and a ping each time was a round trip per transaction (5% of a /status read's CPU,
    measured). What the ping is for, a connection the server dropped while it sat in the pool
    (restart, wait_timeout, failover), happens to idle connections; one that was in use a
    moment ago and broke since fails its first statement, is dropped with the whole pool
    (SQLAlchemy invalidates it on a lost connection), and the request answers 503."""

    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _note_return(_dbapi_connection: Any, record: Any) -> None:
        record.info[RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_after_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return  # fresh from connect, or back from use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # As pool_pre_ping does: this and every older pooled connection are replaced.
            raise InvalidatePoolError(f"ping after {PING_AFTER_IDLE_SECONDS}s idle: {exc}") from exc


def _connect_or_lost(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a driver connection; a server that hangs up while asyncmy connects is a lost
    connection (2013), a DBAPI error like any other, so the caller answers 503.

    asyncmy raises a bare RuntimeError ("Transport does not expose socket instance") when the
    socket closed between accepting and its first option call, as a server refusing with
    "Too many connections" does under load on uvloop: without this it was a 500.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except RuntimeError as exc:
        raise dialect.loaded_dbapi.OperationalError(
            2013, f"Lost connection to server during connect ({exc})"
        ) from exc


def _wsrep_on(row: Sequence[Any] | None) -> bool:
    """Read the answer to WSREP_ON_QUERY: whether the server is a Galera node."""
    return row is not None and str(row[1]).upper() == "ON"


def _note_cluster(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(WSREP_ON_QUERY)
        record.info[ON_CLUSTER] = _wsrep_on(cursor.fetchone())
    finally:
        cursor.close()


async def on_cluster(connection: AsyncConnection) -> bool:
    """Whether this MariaDB/MySQL connection is to a Galera node."""
    return _wsrep_on((await connection.exec_driver_sql(WSREP_ON_QUERY)).first())


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
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_PAGE_CACHE_KIB}")  # negative: KiB, not pages
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # FOR UPDATE compiles to nothing on SQLite: without IMMEDIATE, two transactions can read
        # the same free ticket and both sell it. IMMEDIATE takes the write lock up front.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
