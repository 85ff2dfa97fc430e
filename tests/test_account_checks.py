"""The guard's account checks: concurrent requests of users this worker has not seen lately
share one lookup, and each still gets its own answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import update

from booking_service.app_state import app_state
from booking_service.bench.seed import create_users
from booking_service.db import connect
from booking_service.models import User
from booking_service.models.types import utcnow
from booking_service.services.account_checks import ActiveUserCache
from tests.support.api import TokenFactory, create_event
from tests.support.apps import http_client, started_app
from tests.support.databases import Database, wipe_tables
from tests.support.servers import free_port
from tests.support.settings import make_settings
from tests.test_errors_api import assert_envelope

# The account lookup: `SELECT user.id FROM user WHERE user.id IN (...)`, quoted per dialect.
ACCOUNT_LOOKUP = re.compile(r"^SELECT \W?user\W?\.\W?id\W? \s*FROM \W?user\W?\s", re.IGNORECASE)


@pytest.fixture
async def wipe_tables_after(database: Database) -> AsyncIterator[None]:
    yield
    await wipe_tables(database.url)


@pytest.mark.usefixtures("wipe_tables_after")
async def test_many_first_seen_users_share_few_lookups_and_a_closed_one_is_refused(
    database: Database,
) -> None:
    settings = make_settings(database.url)
    tokens = TokenFactory(settings)
    owner, *readers = await create_users(database.url, 61, prefix="first-seen-")
    closed = readers[7]
    async with connect(database.url) as engine, engine.begin() as conn:
        await conn.execute(update(User).where(User.id == closed).values(deleted_at=utcnow()))
    async with started_app(settings) as app, http_client(app) as http:
        event_id = await create_event(http, tokens.headers(owner), 3)
        lookups: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if ACCOUNT_LOOKUP.match(statement.lstrip()):
                lookups.append(statement)

        engine_events = app_state(app).engine.sync_engine
        sqlalchemy_event.listen(engine_events, "before_cursor_execute", count)
        try:
            answers = await asyncio.gather(
                *(http.get(f"/status/{event_id}", headers=tokens.headers(u)) for u in readers)
            )
        finally:
            sqlalchemy_event.remove(engine_events, "before_cursor_execute", count)
        for user_id, answer in zip(readers, answers, strict=True):
            if user_id == closed:
                assert_envelope(answer, 401, "invalid_token")
            else:
                assert answer.status_code == 200, answer.text
        # One lookup for the first request, then one for each batch that came meanwhile
        # (how many batches depends on timing), and the re-check of the account not found:
        # far fewer than one per request.
        assert 1 <= len(lookups) <= len(readers) // 4, lookups


async def test_a_failed_lookup_answers_every_waiter_with_a_503() -> None:
    # Nothing listens there: the shared lookup fails to connect.
    settings = make_settings(f"mysql+asyncmy://root@127.0.0.1:{free_port()}/nowhere")
    tokens = TokenFactory(settings)
    async with started_app(settings) as app, http_client(app) as http:
        answers = await asyncio.gather(
            *(http.get("/status/1", headers=tokens.headers(user_id)) for user_id in range(1, 30))
        )
        for answer in answers:
            assert_envelope(answer, 503, "busy")
        assert app_state(app).account_checks.lookups < len(answers)


def test_an_open_answer_is_trusted_only_from_the_query_that_gave_it() -> None:
    cache = ActiveUserCache(ttl_seconds=5)
    cache.remember_active({1}, checked_at=0.0)  # a query long ago: already past its age
    cache.remember_active({2}, checked_at=1e12)
    assert not cache.is_known_active(1)
    assert cache.is_known_active(2)
