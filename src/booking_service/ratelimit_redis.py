"""Rate-limit windows shared through Redis, awaited on the event loop and never blocking it.

One Lua script counts a request's windows and returns what the `X-RateLimit-*` headers need
(each window's count and time to reset): one round trip per request. Within a worker, requests
that arrive while a script call is on its way wait and go together in the next call, so under
load a round trip carries many requests (the word for them is a group, as in the booking
queue); a lone request is sent at once.

When Redis fails, the caller counts in memory instead (`hit` answers None):
- refused connections fail at once;
- a Redis that hangs (a stopped process, a network dropping packets) costs at most
  `timeout_seconds` per request, and after the first failure Redis is left alone for
  `retry_seconds` rather than paying that timeout on every request;
- once it answers again, limits are shared again: no restart, no stale connection (a failed
  connection is dropped and the next call opens a new one, and the script is loaded again if
  the server lost it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from booking_service import metrics

log = logging.getLogger("booking_service.ratelimit")

# KEYS: every window of every request in the group, request after request.
# ARGV: per request, its number of windows, then per window its limit and its length (seconds).
# A request's windows are counted in order, and counting stops at the first one over its limit
# (as slowapi does), so a refused request does not use up its longer windows.
# Returns per window its count (0: not counted) and milliseconds until it resets.
HIT_SCRIPT = """
local result = {}
local key = 1
local arg = 1
while arg <= #ARGV do
  local windows = tonumber(ARGV[arg])
  arg = arg + 1
  local over = false
  for _ = 1, windows do
    local limit, seconds = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
    arg = arg + 2
    if over then
      result[#result + 1] = 0
      result[#result + 1] = 0
    else
      local count = redis.call('INCR', KEYS[key])
      local ttl = redis.call('PTTL', KEYS[key])
      if ttl < 0 then
        redis.call('EXPIRE', KEYS[key], seconds)
        ttl = seconds * 1000
      end
      result[#result + 1] = count
      result[#result + 1] = ttl
      over = count > limit
    end
    key = key + 1
  end
end
return result
"""


# The Redis schemes RATE_LIMIT_STORAGE_URL accepts (config.RATE_LIMIT_STORAGE_SCHEMES), and the
# URL scheme redis-py understands for each.
REDIS_SCHEMES = {
    "redis": "redis",
    "rediss": "rediss",
    "redis+unix": "unix",
}


def redis_client_url(storage_url: str) -> str | None:
    """The redis-py URL for a rate-limit storage URL on Redis; None for any other storage."""
    scheme, separator, rest = storage_url.partition("://")
    target = REDIS_SCHEMES.get(scheme.lower())
    if not separator or target is None:
        return None
    return f"{target}://{rest}"


@dataclass(frozen=True, slots=True)
class WindowHit:
    """One window of a request: its Redis key, its limit and its length in seconds."""

    key: str
    limit: int
    seconds: int


@dataclass(frozen=True, slots=True)
class WindowCount:
    """A window after the hit: hits in it, this one included (0: not counted), and when it
    resets (epoch seconds)."""

    count: int
    reset_at: float


@dataclass(slots=True)
class _Waiting:
    windows: Sequence[WindowHit]
    deadline: float  # loop time after which this request no longer waits for Redis
    future: asyncio.Future[list[WindowCount] | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class RedisWindows:
    """The shared windows of one worker: one connection, one script call in flight at a time."""

    def __init__(
        self, url: str, *, name: str, timeout_seconds: float, retry_seconds: float
    ) -> None:
        self._client = Redis.from_url(
            url,
            # asyncio.timeout_at bounds each call (redis-py drops a connection cancelled
            # mid-reply); a socket timeout would only add a timer to every send and read.
            socket_connect_timeout=timeout_seconds,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),  # a failure falls back to memory, not a retry
            max_connections=1,
        )
        self._script = self._client.register_script(HIT_SCRIPT)
        self._name = name
        self._timeout = timeout_seconds
        self._retry_seconds = retry_seconds
        self._waiting: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None
        self._retry_at = 0.0  # monotonic time before which Redis is not asked
        self.up = True
        metrics.set_rate_limit_storage_up(True)

    async def hit(self, windows: Sequence[WindowHit]) -> list[WindowCount] | None:
        """Count a request's windows; None when Redis cannot answer in time (count in memory)."""
        if self._retry_at and time.monotonic() < self._retry_at:
            return None
        loop = asyncio.get_running_loop()
        waiting = _Waiting(windows, loop.time() + self._timeout)
        self._waiting.append(waiting)
        if self._sender is None:
            self._sender = loop.create_task(self._send_groups())
        return await waiting.future

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        await self._client.aclose()

    async def _send_groups(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                answers = await self._run(group)
                if answers is None:  # those that queued meanwhile count in memory too
                    group, self._waiting = group + self._waiting, []
                for index, waiting in enumerate(group):
                    if not waiting.future.done():
                        waiting.future.set_result(answers[index] if answers else None)
        finally:
            self._sender = None

    async def _run(self, group: list[_Waiting]) -> list[list[WindowCount]] | None:
        """Each request's counts, or None when Redis failed."""
        keys: list[str] = []
        args: list[int] = []
        for waiting in group:
            args.append(len(waiting.windows))
            for window in waiting.windows:
                keys.append(window.key)
                args += (window.limit, window.seconds)
        try:
            # The oldest request in the group decides how long the group may wait.
            async with asyncio.timeout_at(group[0].deadline):
                reply = await self._script(keys, args)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._went_down(exc)
            return None
        self._answered()
        now = time.time()
        counts = [
            WindowCount(int(reply[i]), now + int(reply[i + 1]) / 1000)
            for i in range(0, len(reply), 2)
        ]
        answers = []
        at = 0
        for waiting in group:
            answers.append(counts[at : at + len(waiting.windows)])
            at += len(waiting.windows)
        return answers

    async def _went_down(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._retry_seconds
        # A connection that failed or timed out mid-reply is useless: the next try opens anew.
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.connection_pool.disconnect()
        except (RedisError, OSError, TimeoutError):
            pass
        if self.up:
            self.up = False
            metrics.set_rate_limit_storage_up(False)
            log.warning(
                "rate limit storage %s is unreachable: limits are counted per worker, in "
                "memory, until it answers again (%s; asked again every %gs)",
                self._name,
                _describe(exc),
                self._retry_seconds,
            )

    def _answered(self) -> None:
        self._retry_at = 0.0
        if not self.up:
            self.up = True
            metrics.set_rate_limit_storage_up(True)
            log.warning("rate limit storage %s answers again: limits are shared", self._name)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not isinstance(exc, RedisError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
