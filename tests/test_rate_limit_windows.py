"""RedisWindows in-process, on the suite's Redis: what a busy worker's event loop does to the
storage timeout."""

from __future__ import annotations

import asyncio
import time

from booking_service.ratelimit_redis import RedisWindows, WindowHit

TIMEOUT_SECONDS = 0.05


async def _windows(url: str) -> RedisWindows:
    windows = RedisWindows(url, name="test", timeout_seconds=TIMEOUT_SECONDS, retry_seconds=1)
    await windows.start()
    assert windows.up
    return windows


async def test_a_busy_event_loop_is_not_taken_for_a_redis_that_hangs(
    shared_redis: tuple[str, str],
) -> None:
    url, prefix = shared_redis
    windows = await _windows(url)
    try:
        hit = asyncio.ensure_future(windows.hit([WindowHit(f"{prefix}:busy", 10, 60)]))
        # Let the call go out, then keep the loop busy past the timeout (a worker serving a
        # burst of requests): Redis answered long ago, the reply waits in the socket.
        for _ in range(5):
            await asyncio.sleep(0)
        time.sleep(3 * TIMEOUT_SECONDS)
        counts = await hit
        assert counts is not None, "a healthy Redis was given up on because the loop was late"
        assert [count.count for count in counts] == [1]
        assert windows.up
    finally:
        await windows.close()


async def test_a_redis_that_never_answers_is_given_up_on_after_the_timeout(
    shared_redis: tuple[str, str],
) -> None:
    url, prefix = shared_redis
    windows = await _windows(url)
    try:
        # CLIENT PAUSE holds every reply of this Redis for a while: a hung server, briefly.
        await windows._client.execute_command("CLIENT", "PAUSE", "500", "WRITE")
        started = time.monotonic()
        counts = await windows.hit([WindowHit(f"{prefix}:hung", 10, 60)])
        took = time.monotonic() - started
        assert counts is None
        assert not windows.up
        assert took < TIMEOUT_SECONDS + 0.1, took
    finally:
        await asyncio.sleep(0.5)
        await windows.close()
