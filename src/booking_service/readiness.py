"""Readiness: can this worker reach its database, and Redis when the rate limiter uses it?

Each check is bounded by a short timeout, so a probe never hangs on a dead dependency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# The Redis schemes RATE_LIMIT_STORAGE_URL accepts (config.RATE_LIMIT_STORAGE_SCHEMES), and the
# URL scheme redis-py understands for each.
REDIS_SCHEMES = {
    "redis": "redis",
    "rediss": "rediss",
    "redis+unix": "unix",
}


@dataclass(frozen=True, slots=True)
class Problem:
    component: str  # "database" or "redis"
    reason: str


def redis_url_to_probe(storage_url: str) -> str | None:
    """The redis-py URL for a rate-limit storage URL on Redis; None for any other storage."""
    scheme, separator, rest = storage_url.partition("://")
    target = REDIS_SCHEMES.get(scheme.lower())
    if not separator or target is None:
        return None
    return f"{target}://{rest}"


class RedisProbe:
    """A small client kept for the worker's lifetime: a probe reuses its connection."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._client = Redis.from_url(
            url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
        )

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


async def _ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def _check(component: str, probe: Awaitable[None], seconds: float) -> Problem | None:
    try:
        async with asyncio.timeout(seconds):
            await probe
    except TimeoutError:
        log.warning("readiness: %s gave no answer within %gs", component, seconds)
        return Problem(component, f"no answer within {seconds:g}s")
    except Exception as exc:  # any failure to reach it means "not ready"
        log.warning("readiness: %s unreachable: %r", component, exc)
        return Problem(component, f"unreachable ({type(exc).__name__})")
    return None


async def find_problems(
    engine: AsyncEngine, redis: RedisProbe | None, timeout_seconds: float
) -> list[Problem]:
    """Run the checks side by side; an empty list means ready."""
    checks = [_check("database", _ping_database(engine), timeout_seconds)]
    if redis is not None:
        checks.append(_check("redis", redis.ping(), timeout_seconds))
    results = await asyncio.gather(*checks)
    return [problem for problem in results if problem is not None]
