"""Rate-limit windows shared through Redis, awaited on the event loop and never blocking it.

One Lua script counts a request's windows and returns what the `X-RateLimit-*` headers need
(each window's count and time to reset): one round trip per request. Within a worker, requests
that arrive while a script call is on its way wait and go together in the next call, so under
load a round trip carries many requests (the word for them is a group, as in the booking
queue); a lone request is sent at once.

When Redis fails, the caller counts in memory instead (`hit` answers None):
- refused connections fail at once;
- a Redis that hangs (a stopped process, a network dropping packets) costs a request at most
  `timeout_seconds` for its own call, after waiting for the one on its way (so at most twice
  that in all), and after the first failure Redis is left alone for
  `retry_seconds` rather than paying that timeout on every request;
- once it answers again, limits are shared again: no restart, no stale connection (a failed
  connection is dropped and the next call opens a new one, and the script is loaded again if
  the server lost it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from booking_service import metrics

log = logging.getLogger("booking_service.ratelimit")

START_SECONDS = 2.0

# ARGV[1]: every window of every request in the group, one per line: `more limit seconds key`,
# where `more` is 1 when the next line is another window of the same request. (One string each
# way, rather than an argument per number and a reply element per number: packing and parsing
# those in redis-py cost more client CPU than the whole script costs Redis.)
# A request's windows are counted in order, and counting stops at the first one over its limit
# (as slowapi does), so a refused request does not use up its longer windows.
# Returns per window `count ttl`, space-separated: its count (0: not counted) and the
# milliseconds until it resets.
HIT_SCRIPT = """
local out = {}
local over = false
for line in string.gmatch(ARGV[1], '[^\\n]+') do
  local more, limit, seconds, key = string.match(line, '^(%d) (%d+) (%d+) (.+)$')
  if over then
    out[#out + 1] = '0 0'
  else
    local count = redis.call('INCR', key)
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('EXPIRE', key, seconds)
      ttl = tonumber(seconds) * 1000
    end
    out[#out + 1] = count .. ' ' .. ttl
    over = count > tonumber(limit)
  end
  if more == '0' then
    over = false
  end
end
return table.concat(out, ' ')
"""


# The Redis schemes RATE_LIMIT_STORAGE_URL accepts (config_checks.RATE_LIMIT_STORAGE_SCHEMES),
# and the URL scheme redis-py understands for each.
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
    """One window of a request: its Redis key (no line breaks), its limit and its length in
    seconds."""

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

    async def start(self) -> None:
        """Connect and load the script before the first request needs them (a worker starting
        may wait longer than a request would)."""
        try:
            async with asyncio.timeout(max(self._timeout, START_SECONDS)):
                await self._client.script_load(HIT_SCRIPT)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._went_down(exc)

    async def hit(self, windows: Sequence[WindowHit]) -> list[WindowCount] | None:
        """Count a request's windows; None when Redis cannot answer in time (count in memory)."""
        if self._retry_at and time.monotonic() < self._retry_at:
            return None
        waiting = _Waiting(windows)
        self._waiting.append(waiting)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_groups())
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
        lines = []
        for waiting in group:
            last = len(waiting.windows) - 1
            lines += [
                f"{int(index < last)} {window.limit} {window.seconds} {window.key}"
                for index, window in enumerate(waiting.windows)
            ]
        try:
            async with _timeout_of_redis(self._timeout):
                reply = await self._script(args=["\n".join(lines)])
            numbers = [int(number) for number in reply.split()]
            if len(numbers) != 2 * len(lines):
                raise ValueError(f"{len(numbers)} numbers for {len(lines)} windows")
        except Exception as exc:  # whatever went wrong, count in memory
            await self._went_down(exc)
            return None
        self._answered()
        now = time.time()
        answers = []
        at = 0
        for waiting in group:
            answers.append(
                [
                    WindowCount(numbers[at + 2 * i], now + numbers[at + 2 * i + 1] / 1000)
                    for i in range(len(waiting.windows))
                ]
            )
            at += 2 * len(waiting.windows)
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


@asynccontextmanager
async def _timeout_of_redis(seconds: float) -> AsyncIterator[None]:
    """asyncio.timeout(seconds), not counting the event loop's own lateness.

    A worker serving a burst can spend longer than the timeout in one turn of its loop; on the
    next turn the reply that arrived meanwhile and the expired timer are both due, and the
    timer wins, so a healthy Redis would be given up on just because this worker was busy.
    A timer that fires late by more than half the timeout therefore grants one more period:
    enough for a reply already in the socket to be read, while a Redis that really hangs still
    costs no more than twice the timeout plus the loop's lateness.
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(None) as timeout:
        handle: asyncio.TimerHandle

        def expire(due: float, forgiven: bool) -> None:
            nonlocal handle
            now = loop.time()
            if not forgiven and now - due > seconds / 2:
                handle = loop.call_at(now + seconds, expire, now + seconds, True)
            else:
                timeout.reschedule(now)

        due = loop.time() + seconds
        handle = loop.call_at(due, expire, due, False)
        try:
            yield
        finally:
            handle.cancel()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not isinstance(exc, RedisError):
        return "no answer in time"
    if not isinstance(exc, RedisError | OSError):
        log.error("rate limit storage call failed", exc_info=exc)  # a bug: keep the traceback
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
