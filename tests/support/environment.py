"""What the suite runs against: the test MariaDB and Redis the environment names, and programs.

Where one is missing, the tests that need it are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

DEFAULT_MARIADB_SERVER = "mysql+asyncmy://root@127.0.0.1:3306/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def mariadb_server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_MARIADB_SERVER


async def mariadb_unavailable_reason() -> str | None:
    url = make_url(mariadb_server_url()).set(database=None)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the server is a reason to skip
        return f"no MariaDB/MySQL at {url.render_as_string()} ({type(exc).__name__}: {exc})"
    finally:
        await engine.dispose()
    return None


def skip_unless_available(what: str, reason: str | None) -> None:
    """Skip the calling test when `reason` says `what` is missing, but fail under CI=true."""
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true: {reason}")
    pytest.skip(f"{what} tests skipped: {reason}")


async def require_mariadb() -> None:
    """Skip the calling test where no MariaDB answers, but fail under CI=true."""
    skip_unless_available("MariaDB", await mariadb_unavailable_reason())


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


def require_redis(url: str | None = None) -> str:
    """The Redis URL (TEST_REDIS_URL by default); skip the calling test where no Redis answers
    there, but fail under CI=true."""
    url = url or redis_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    reason = None
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis at {url} ({type(exc).__name__}: {exc})"
    finally:
        client.close()
    skip_unless_available("Redis", reason)
    return url


def require_program(name: str) -> str:
    """The path of the program `name`; skip (fail under CI=true) where it is not installed."""
    path = shutil.which(name)
    skip_unless_available(name, None if path else f"`{name}` is not on PATH")
    assert path is not None
    return path
