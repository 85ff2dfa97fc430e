"""Waiting in tests: for the clock to pass a moment, or for a condition to hold."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any


async def wait_past(moment: datetime) -> None:
    """Let the clock pass `moment` (an offer's deadline, say): time itself is what is tested."""
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.01)


async def eventually(condition: Any, *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll the async `condition()` until it returns something truthy, and return that; fail
    after `timeout` seconds (a bound on a hang, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        await asyncio.sleep(0.05)
