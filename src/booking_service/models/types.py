"""Column types shared by the tables."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, naive UTC with microseconds in the database."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class db_utcnow(FunctionElement[datetime]):
    """The database server's clock, in UTC with microseconds, as of the statement.

    Every replica asks the one database what time it is, so replicas whose own clocks drift
    still agree on when a sale opens or an offer lapses.
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "db_utcnow"


@compiles(db_utcnow)
def _db_utcnow_mysql(_element: db_utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "UTC_TIMESTAMP(6)"


@compiles(db_utcnow, "sqlite")
def _db_utcnow_sqlite(_element: db_utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    # 'now' is fixed for the whole statement; padded to the six fraction digits with which
    # SQLAlchemy stores DATETIME on SQLite, so the text compares in time order with columns.
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


class db_utcnow_locked(FunctionElement[datetime]):
    """The database server's clock in UTC as the row is read: after any wait for its lock.

    In a `SELECT ... FOR UPDATE`, UTC_TIMESTAMP() is the moment the statement started, which a
    wait for the lock can leave seconds behind: a deadline set from it would be cut short by
    the wait. SYSDATE() is read when the row is, so the statement's start plus the time elapsed
    since then is the moment the lock was held. (SQLite takes its lock at BEGIN.)
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "db_utcnow_locked"


@compiles(db_utcnow_locked)
def _db_utcnow_locked_mysql(_element: db_utcnow_locked, _compiler: SQLCompiler, **_kw: Any) -> str:
    return (
        "(UTC_TIMESTAMP(6) + INTERVAL TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) MICROSECOND)"
    )


@compiles(db_utcnow_locked, "sqlite")
def _db_utcnow_locked_sqlite(_element: db_utcnow_locked, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


def sql_list(values: Iterable[enum.StrEnum]) -> str:
    """`'a', 'b'`: the values of a string enum, for an `IN (...)` of a CHECK constraint."""
    return ", ".join(f"'{value.value}'" for value in values)
