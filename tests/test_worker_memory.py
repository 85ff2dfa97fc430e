"""A worker's long-lived objects are frozen out of the garbage collector's full passes."""

from __future__ import annotations

import gc

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
