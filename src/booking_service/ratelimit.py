"""Rate limits: who is counted, how much each may do, and the answer when over.

Routes are marked where they are declared, with `@rate_limited(PER_USER)` and the like. Each
app builds its own `RateLimiter` from its Settings (kept in its AppState), and a
marked route consults it on every call, just before its body runs: after the JWT guard and body
validation, before any password hashing. Routes that are not marked (docs, health, readiness)
are never limited.

Budgets are per endpoint, not per URL: `/status/1` and `/status/2` draw on one budget.

Where the counts live:
- `memory://`: slowapi's Limiter on its in-memory storage, in each worker. Its calls are
  synchronous, which costs nothing when the storage is a dict in the same process.
- `redis://` and the like: ratelimit_redis.RedisWindows, awaited (one script call per request,
  never a blocking call on the event loop). slowapi's Redis storage is synchronous, so it is not
  used. While Redis cannot answer, the worker counts in slowapi's memory instead (fail open).
Either way the X-RateLimit-* headers and the 429 are built here, the same way.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request
from starlette.responses import Response

from booking_service import metrics
from booking_service.app_state import app_state
from booking_service.config import Settings
from booking_service.errors import RateLimited
from booking_service.ratelimit_redis import RedisWindows, WindowHit, redis_client_url

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ROUTE_LIMIT_ATTRIBUTE = "booking_rate_limit"


def client_address(request: Request) -> str:
    """The socket peer; uvicorn replaces it with the X-Forwarded-For client only when the peer
    is one of TRUSTED_PROXIES, so a client cannot choose its own address."""
    return request.client.host if request.client else "unknown"


def address_key(request: Request) -> str:
    return f"address:{client_address(request)}"


def user_key(request: Request) -> str:
    # The JWT guard (deps.TokenGuard) records whom the token speaks for.
    user_id = getattr(request.state, "user_id", None)
    return f"user:{user_id}" if user_id is not None else address_key(request)


@dataclass(frozen=True)
class RouteLimit:
    budget: Literal["rate_limit", "auth_rate_limit"]  # the Settings field with the limit
    key: Callable[[Request], str]


PER_USER = RouteLimit("rate_limit", user_key)
PER_ADDRESS_AUTH = RouteLimit("auth_rate_limit", address_key)
PER_USER_AUTH = RouteLimit("auth_rate_limit", user_key)


def route_limit(endpoint: Callable[..., Any]) -> RouteLimit | None:
    """The limit a route was marked with, if any."""
    limit: RouteLimit | None = getattr(endpoint, ROUTE_LIMIT_ATTRIBUTE, None)
    return limit


def rate_limited(
    limit: RouteLimit,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Mark a route as limited. It must take `request: Request` and `response: Response`:
    slowapi reads the first and writes the X-RateLimit-* headers into the second."""

    def decorate(endpoint: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        missing = {"request", "response"} - inspect.signature(endpoint).parameters.keys()
        if missing:
            raise TypeError(f"{endpoint.__qualname__} needs the parameters {sorted(missing)}")

        @functools.wraps(endpoint)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            request = kwargs["request"]
            assert isinstance(request, Request)
            limiter = app_state(request.app).rate_limiter
            return await limiter.call(endpoint, limit, request, kwargs)

        setattr(limited, ROUTE_LIMIT_ATTRIBUTE, limit)
        return limited

    return decorate


@dataclass(frozen=True, slots=True)
class _Window:
    """One limit of a route, with its Redis key around the client's key: `head + key + tail`."""

    item: RateLimitItem
    head: str
    tail: str


@dataclass(frozen=True, slots=True)
class _Budget:
    """What a limited route counts with: slowapi's decorated route (memory), and its limits
    with their Redis keys (shared)."""

    in_memory: Callable[..., Awaitable[Any]]
    windows: Sequence[_Window]
    shortest: int  # the window the headers of a served request speak of (slowapi's choice)


class RateLimiter:
    """One app's rate limiter, configured from its Settings (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self._limits = {
            "rate_limit": settings.rate_limit,
            "auth_rate_limit": settings.auth_rate_limit,
        }
        self._prefix = settings.rate_limit_key_prefix
        self._memory = Limiter(
            key_func=address_key,
            storage_uri="memory://",
            key_prefix=self._prefix,
            key_style="endpoint",
            strategy="fixed-window",
            headers_enabled=False,  # built here, for both storages
            enabled=settings.rate_limit_enabled,
        )
        # slowapi also reads RATELIMIT_ENABLED from the environment or `.env`: ours decides.
        self._memory.enabled = settings.rate_limit_enabled
        # slowapi logs a WARNING for every refused request; we log what operators need.
        logging.getLogger("slowapi").setLevel(logging.ERROR)
        self.shared = _shared_windows(settings)
        if self.shared is None:
            metrics.set_rate_limit_storage_up(True)  # memory does not fail
        self._budgets: dict[Callable[..., Any], _Budget] = {}  # a route has one limit

    async def start(self) -> None:
        if self.shared is not None:
            await self.shared.start()

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()

    async def call(
        self,
        endpoint: Callable[..., Awaitable[R]],
        limit: RouteLimit,
        request: Request,
        kwargs: dict[str, Any],
    ) -> R:
        if not self.enabled:
            return await endpoint(**kwargs)
        budget = self._budgets.get(endpoint)
        if budget is None:
            budget = self._budgets[endpoint] = self._budget(endpoint, limit)
        if self.shared is not None:
            headers = await self._count_shared(budget, limit.key(request))
            if headers is not None:
                return _with_headers(await endpoint(**kwargs), kwargs, headers)
        # memory://, or Redis cannot answer now: slowapi counts as it calls the route.
        try:
            result: R = await budget.in_memory(**kwargs)
        except RateLimitExceeded:
            raise self._memory_refusal(request) from None
        item, remaining, reset_at = self._memory_window(request)
        return _with_headers(result, kwargs, budget_headers(item, remaining, reset_at))

    def _budget(self, endpoint: Callable[..., Awaitable[Any]], limit: RouteLimit) -> _Budget:
        text = self._limits[limit.budget]
        in_memory = self._memory.limit(text, key_func=limit.key)(endpoint)
        scope = f"{endpoint.__module__}.{endpoint.__name__}"  # slowapi's endpoint key style
        items = parse_many(text)
        windows = []
        for item in items:
            head, tail = item.key_for(self._prefix, "\0", scope).split("\0")
            windows.append(_Window(item, head, tail))
        shortest = min(range(len(items)), key=lambda index: items[index])
        return _Budget(in_memory, windows, shortest)

    async def _count_shared(self, budget: _Budget, key: str) -> dict[str, str] | None:
        """Count in Redis; the headers of a served request, None to count in memory instead.
        Raises RateLimited when over."""
        assert self.shared is not None
        counts = await self.shared.hit(
            [
                WindowHit(
                    window.head + key + window.tail, window.item.amount, window.item.get_expiry()
                )
                for window in budget.windows
            ]
        )
        if counts is None:
            return None
        for window, count in zip(budget.windows, counts, strict=True):
            if count.count > window.item.amount:
                raise _refusal(window.item, count.reset_at)
        item, count = budget.windows[budget.shortest].item, counts[budget.shortest]
        return budget_headers(item, item.amount - count.count, count.reset_at)

    def _memory_window(self, request: Request) -> tuple[RateLimitItem, int, float]:
        """The window slowapi chose for the headers (the one over, else the shortest), read
        back from its in-memory storage."""
        item, identifiers = request.state.view_rate_limit
        reset_at, remaining = self._memory.limiter.get_window_stats(item, *identifiers)
        return item, remaining, reset_at

    def _memory_refusal(self, request: Request) -> RateLimited:
        item, _, reset_at = self._memory_window(request)
        return _refusal(item, reset_at)


def _shared_windows(settings: Settings) -> RedisWindows | None:
    url = redis_client_url(settings.rate_limit_storage_url)
    if url is None or not settings.rate_limit_enabled:
        return None
    parts = urlsplit(settings.rate_limit_storage_url)
    return RedisWindows(
        url,
        name=f"{parts.scheme}://{parts.hostname or ''}:{parts.port or ''}",
        timeout_seconds=settings.rate_limit_storage_timeout_seconds,
        retry_seconds=settings.rate_limit_storage_retry_seconds,
    )


def budget_headers(
    item: RateLimitItem, remaining: int, reset_at: float, *, refused: bool = False
) -> dict[str, str]:
    """X-RateLimit-* (the reset in whole epoch seconds) for every limited answer, and
    Retry-After on a refusal only: a served client has nothing to wait for."""
    headers = {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(math.ceil(reset_at)),
    }
    if refused:
        headers["Retry-After"] = str(max(1, math.ceil(reset_at - time.time())))
    return headers


def _refusal(item: RateLimitItem, reset_at: float) -> RateLimited:
    return RateLimited(
        f"Too many requests: the limit is {item}",
        headers=budget_headers(item, 0, reset_at, refused=True),
    )


def _with_headers(result: R, kwargs: dict[str, Any], headers: dict[str, str]) -> R:
    # A route returning its own Response carries the headers; otherwise FastAPI merges the
    # `response` parameter's headers into the one it builds.
    answered = result if isinstance(result, Response) else kwargs["response"]
    assert isinstance(answered, Response)
    # Appended as they are (no header of these names is there yet): MutableHeaders.update
    # would scan the list once per header, on every limited request.
    answered.raw_headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    )
    return result
