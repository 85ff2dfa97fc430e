"""Work every worker runs beside the API (webhook delivery, housekeeping), for the app's
lifetime. Nothing here may assume it is the only worker or replica doing it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundWork:
    """The app's background tasks: started in the lifespan, cancelled when it ends."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def repeat(work: Callable[[], Awaitable[object]], *, every: float, name: str) -> None:
    """Run `work` every `every` seconds, give or take half, forever; a failure is logged and
    the next round comes anyway. Workers started together drift apart."""
    while True:
        await asyncio.sleep(random.uniform(every / 2, every))  # noqa: S311 - jitter
        try:
            await work()
        except Exception:
            log.exception("%s failed; trying again in about %.0f s", name, every)
