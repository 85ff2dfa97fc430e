"""Rate limits (slowapi): who is counted, how much each may do, and the answer when over.

Routes are marked where they are declared, with `@rate_limited(PER_USER)` and the like. Each
app builds its own slowapi `Limiter` from its Settings (`RateLimiter`, kept in
`app.state.rate_limiter`), and a marked route consults its app's limiter on every call, just
before its body runs: after the JWT guard and body validation, before any password hashing.
Routes that are not marked (docs, health, readiness) are never limited.

Budgets are per endpoint, not per URL: `/status/1` and `/status/2` draw on one budget.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit

from redis.backoff import NoBackoff
from redis.retry import Retry
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response

from booking_service.config import Settings
from booking_service.errors import RateLimited

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ROUTE_LIMIT_ATTRIBUTE = "booking_rate_limit"

# slowapi talks to its storage synchronously, on the event loop: a Redis that stops answering
# must fail fast, without redis-py's default retries, so the limiter can fall back at once.
REDIS_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 0.25,
    "socket_timeout": 0.25,
    "retry": Retry(NoBackoff(), 0),
}


def client_address(request: Request) -> str:
    """The socket peer; uvicorn replaces it with the X-Forwarded-For client only when the peer
    is one of TRUSTED_PROXIES, so a client cannot choose its own address."""
    return request.client.host if request.client else "unknown"


def address_key(request: Request) -> str:
    return f"address:{client_address(request)}"


def user_key(request: Request) -> str:
    # The JWT guard (deps.get_current_user) records whom the token speaks for.
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
            limiter: RateLimiter = request.app.state.rate_limiter
            return await limiter.call(endpoint, limit, request, kwargs)

        setattr(limited, ROUTE_LIMIT_ATTRIBUTE, limit)
        return limited

    return decorate


class RateLimiter:
    """One app's slowapi Limiter, configured from its Settings.

    Two slowapi internals are read here: `_storage_dead` (to log when the storage fails and
    recovers) and `_inject_headers` (the 429's headers, as slowapi's own handler builds them).
    """

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self._limits = {
            "rate_limit": settings.rate_limit,
            "auth_rate_limit": settings.auth_rate_limit,
        }
        storage_url = settings.rate_limit_storage_url
        parts = urlsplit(storage_url)
        self._storage_name = f"{parts.scheme}://{parts.hostname or ''}:{parts.port or ''}"
        self._limiter = Limiter(
            key_func=address_key,
            storage_uri=storage_url,
            storage_options=REDIS_OPTIONS if parts.scheme != "memory" else {},
            key_prefix=settings.rate_limit_key_prefix,
            key_style="endpoint",
            strategy="fixed-window",
            headers_enabled=True,
            # Fail open: when the storage fails, each worker counts in its own memory until
            # the storage answers again (checked with backoff); never a 500.
            in_memory_fallback_enabled=True,
            swallow_errors=True,
            enabled=settings.rate_limit_enabled,
        )
        # slowapi also reads RATELIMIT_ENABLED from the environment or `.env`: ours decides.
        self._limiter.enabled = settings.rate_limit_enabled
        # slowapi logs a WARNING for every refused request; we log what operators need.
        logging.getLogger("slowapi").setLevel(logging.ERROR)
        self._routes: dict[tuple[Callable[..., Any], RouteLimit], Callable[..., Any]] = {}
        self._storage_down = False

    async def call(
        self,
        endpoint: Callable[..., Awaitable[R]],
        limit: RouteLimit,
        request: Request,
        kwargs: dict[str, Any],
    ) -> R:
        if not self.enabled:
            return await endpoint(**kwargs)
        limited = self._routes.get((endpoint, limit))
        if limited is None:
            limited = self._limiter.limit(self._limits[limit.budget], key_func=limit.key)(endpoint)
            self._routes[(endpoint, limit)] = limited
        try:
            result = await limited(**kwargs)
        except RateLimitExceeded as exc:
            raise RateLimited(
                f"Too many requests: the limit is {exc.detail}",
                headers=self._refusal_headers(request),
            ) from None
        finally:
            self._report_storage_state()
        # slowapi wrote its headers into the returned response, or else into `response`.
        answered = result if isinstance(result, Response) else kwargs["response"]
        assert isinstance(answered, Response)
        _tidy_headers(answered.headers, refused=False)
        return cast(R, result)

    def _refusal_headers(self, request: Request) -> dict[str, str]:
        # X-RateLimit-* and Retry-After, computed the way slowapi's own 429 handler does.
        scratch = Response()
        current_limit = getattr(request.state, "view_rate_limit", None)
        if current_limit is not None:
            self._limiter._inject_headers(scratch, current_limit)
        _tidy_headers(scratch.headers, refused=True)
        return {
            name: value
            for name, value in scratch.headers.items()
            if name not in ("content-length", "content-type")
        }

    def _report_storage_state(self) -> None:
        down = bool(self._limiter._storage_dead)
        if down == self._storage_down:
            return
        self._storage_down = down
        if down:
            log.warning(
                "rate limit storage %s is unreachable: limits are counted per worker, in "
                "memory, until it answers again",
                self._storage_name,
            )
        else:
            log.warning("rate limit storage %s answers again", self._storage_name)


def _tidy_headers(headers: MutableHeaders, *, refused: bool) -> None:
    """X-RateLimit-Reset as whole epoch seconds; Retry-After only on a refusal (slowapi puts
    it on every answer, which would tell clients that were served to wait)."""
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        headers["X-RateLimit-Reset"] = str(math.ceil(float(reset)))
    if not refused:
        del headers["retry-after"]
    elif "retry-after" not in headers:  # the storage failed while computing it
        headers["Retry-After"] = "1"
