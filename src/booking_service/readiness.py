"""Readiness: can this worker reach its database, and Redis when the rate limiter uses it?

The database is a condition of readiness. Redis is not: while it is out the rate limiter fails
open (each worker counts in memory), so the worker still serves, and a Redis outage shared by
every replica must not take them all out of their load balancer. It is reported as degraded.
Each check is bounded by a short timeout, so a probe never hangs on a dead dependency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Problem:
    component: str  # "database" or "redis"
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    unready: list[Problem] = field(default_factory=list)  # the worker should get no traffic
    degraded: list[Problem] = field(default_factory=list)  # it serves, with less


class RedisProbe:
    """A small client kept for the worker's lifetime: a probe reuses its connection.

    A connection that died with an old server is found out on its first use; redis-py then
    retries once on a new one (no backoff), so the first probe after a restart already answers.
    """

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._client = Redis.from_url(
            url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 1),
        )

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except BaseException:
            # Whatever failed (a timeout, a cancelled probe), start the next one afresh.
            await self._client.connection_pool.disconnect()
            raise

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


class Readiness:
    """The worker's readiness checks: its database, and Redis when given one to probe."""

    def __init__(
        self, engine: AsyncEngine, redis: RedisProbe | None, *, timeout_seconds: float
    ) -> None:
        self._engine = engine
        self.redis = redis
        self._timeout = timeout_seconds

    async def check(self) -> Report:
        """Run the checks side by side."""
        checks = [_check("database", _ping_database(self._engine), self._timeout)]
        if self.redis is not None:
            checks.append(_check("redis", self.redis.ping(), self._timeout))
        database, *rest = await asyncio.gather(*checks)
        return Report(
            unready=[database] if database else [],
            degraded=[problem for problem in rest if problem is not None],
        )

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()
