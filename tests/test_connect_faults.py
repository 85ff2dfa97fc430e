"""A MariaDB server that hangs up while the driver connects: a 503 for the caller, never a 500.

Under load a server refusing with "Too many connections" closes the socket at once, and on
uvloop (which `serve` runs on) asyncmy can find the transport closed before its first socket
option call and raise a bare RuntimeError. The hang-up is made to happen at that moment here:
a uvloop loop whose new connections are aborted right after they open, on the real server.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uvloop
from sqlalchemy import text

from booking_service.db import create_session_factory, run_transaction
from booking_service.engine import create_engine
from booking_service.errors import ServiceBusy
from tests.support.databases import Database
from tests.support.settings import make_settings

pytestmark = pytest.mark.mariadb


class HangUpLoop(uvloop.Loop):  # type: ignore[misc]
    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await super().create_connection(*args, **kwargs)
        transport.abort()  # the server hung up right after accepting
        await asyncio.sleep(0)
        return transport, protocol


async def _select_one(database_url: str) -> object:
    engine = create_engine(make_settings(database_url))
    session_factory = create_session_factory(engine)
    try:
        async with session_factory() as session:

            async def work() -> object:
                return await session.scalar(text("SELECT 1"))

            return await run_transaction(session, work, retries=0, read_only=True)
    except Exception as exc:
        return exc
    finally:
        await engine.dispose()


def test_a_hang_up_while_connecting_is_service_busy(mariadb_database: Database) -> None:
    def run() -> object:
        with asyncio.Runner(loop_factory=HangUpLoop) as runner:
            return runner.run(_select_one(mariadb_database.url))

    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(run).result(timeout=60)
    assert isinstance(outcome, ServiceBusy), repr(outcome)
