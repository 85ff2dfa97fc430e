"""Fixtures: every API test runs once on SQLite and once on MariaDB, on real migrations."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from pydantic import AliasChoices

from booking_service.app_state import app_state
from booking_service.config import Settings
from booking_service.main import create_app
from tests.contract import Contract
from tests.support.api import TokenFactory
from tests.support.apps import OPENAPI_FILE, http_client
from tests.support.databases import (
    BACKENDS,
    Database,
    create_mariadb_database,
    create_sqlite_database,
    wipe_tables,
)
from tests.support.environment import require_mariadb, require_redis
from tests.support.settings import make_settings

# The suite configures the service explicitly: settings from the developer's shell must not leak
# in. (TEST_DATABASE_URL is the suite's own variable and is kept.)
for _field, _info in Settings.model_fields.items():
    os.environ.pop(_field.upper(), None)
    if isinstance(_info.validation_alias, AliasChoices):  # a former name, still read
        for _alias in _info.validation_alias.choices:
            os.environ.pop(str(_alias).upper(), None)


@pytest.fixture
def shared_redis() -> Iterator[tuple[str, str]]:
    """The suite's Redis (TEST_REDIS_URL), and a key prefix of this test's own, whose keys are
    deleted afterwards."""
    url = require_redis()
    prefix = f"booking-test-{secrets.token_hex(6)}"
    yield url, prefix
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
async def mariadb_database() -> AsyncIterator[Database]:
    await require_mariadb()
    async with create_mariadb_database() as database:
        yield database


@pytest.fixture(scope="session")
async def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    async with create_sqlite_database(tmp_path_factory.mktemp("sqlite")) as database:
        yield database


@pytest.fixture(scope="session", params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Database:
    """The migrated database under test: SQLite, then MariaDB."""
    fixture_name = f"{request.param}_database"
    db: Database = request.getfixturevalue(fixture_name)
    return db


@pytest.fixture(scope="session")
async def app(database: Database) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(database.url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as http:
        yield http
    await wipe_tables(database.url)
    app_state(app).user_cache.clear()


@pytest.fixture
def tokens(app: FastAPI) -> TokenFactory:
    return TokenFactory(app_state(app).settings)


@pytest.fixture
def settings_factory(database: Database) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        return make_settings(database.url, **overrides)

    return factory


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def contract() -> Contract:
    """What the committed document promises each operation answers."""
    return Contract(json.loads(OPENAPI_FILE.read_text(encoding="utf-8")))
