"""A worker's long-lived objects are frozen out of the garbage collector's full passes, and
what it keeps per database connection is bounded."""

from __future__ import annotations

import gc

from sqlalchemy import select, text

from booking_service.engine import SQLITE_CACHED_STATEMENTS, SQLITE_PAGE_CACHE_KIB, create_engine
from booking_service.models import User
from tests.support.apps import started_app
from tests.support.databases import Database
from tests.support.settings import make_settings


async def test_startup_freezes_what_lives_as_long_as_the_worker(database: Database) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    async with started_app(make_settings(database.url)):
        # The app, its routes and SQLAlchemy's and pydantic's caches: many thousands of objects
        # a full collection would otherwise walk again and again under load.
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()


async def test_a_sqlite_connection_keeps_a_bounded_page_cache_and_few_statements(
    sqlite_database: Database,
) -> None:
    # Every length of an IN list is a statement of its own: a worker grouping lookups of up to
    # 500 ids would otherwise keep 128 of them, and 2 MiB of pages, on each pooled connection.
    engine = create_engine(make_settings(sqlite_database.url, db_pool_size=1, db_max_overflow=0))
    try:
        async with engine.connect() as conn:
            for size in range(1, 201):
                await conn.execute(select(User.id).where(User.id.in_(range(size))))
            cache_kib = -(await conn.execute(text("PRAGMA cache_size"))).scalar_one()
            kept, held = (
                await conn.execute(text("SELECT count(*), sum(mem) FROM sqlite_stmt"))
            ).one()
    finally:
        await engine.dispose()
    assert cache_kib == SQLITE_PAGE_CACHE_KIB
    # The cached statements, plus the one reading sqlite_stmt.
    assert kept <= SQLITE_CACHED_STATEMENTS + 1
    assert held < 2 * 2**20
