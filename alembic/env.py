"""Alembic environment: async engine, URL from the service's settings unless given."""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import booking_service.models  # noqa: F401 - registers every table
from booking_service.migration_lock import LEASE_TABLE, migration_lock
from booking_service.models.base import Base

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


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    # The migration lease lives beside the schema, not in it (booking_service.migration_lock).
    return not (type_ == "table" and name == LEASE_TABLE)


def do_run_migrations(connection: Connection) -> None:
    # Batch mode lets SQLite alter tables by copying them.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    try:
        # Replicas started together each migrate before serving: they take turns.
        async with migration_lock(engine), engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
