"""Alembic environment: async engine, URL from the service's settings unless given."""

from __future__ import annotations

import asyncio
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import booking_service.models  # noqa: F401 - registers every table
from booking_service.db import Base

config = context.config
if config.config_file_name is not None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from booking_service.config import get_settings

    return get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Replicas started together (`docker compose up --scale api=3`) each migrate before serving.
# On MariaDB/MySQL they take turns under a named lock, per database: the first one migrates,
# the others then find the schema at head. Without it they race to CREATE the same tables.
MIGRATION_LOCK = "LEFT(CONCAT('booking_service.migrate.', DATABASE()), 64)"
MIGRATION_LOCK_WAIT_SECONDS = 600


@contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    if connection.dialect.name != "mysql":
        yield
        return
    acquired = connection.execute(
        text(f"SELECT GET_LOCK({MIGRATION_LOCK}, :wait)"), {"wait": MIGRATION_LOCK_WAIT_SECONDS}
    ).scalar()
    # The lock belongs to the session; end the implicit transaction so that Alembic runs and
    # commits its own.
    connection.commit()
    if acquired != 1:
        raise RuntimeError("another process kept the migration lock for too long")
    try:
        yield
    finally:
        connection.execute(text(f"SELECT RELEASE_LOCK({MIGRATION_LOCK})"))
        connection.commit()


def do_run_migrations(connection: Connection) -> None:
    with migration_lock(connection):
        # Batch mode lets SQLite alter tables by copying them.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
