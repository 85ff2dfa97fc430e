"""Hypothesis state machines driving the app in process, from a thread of their own.

The machines are synchronous while the app is async, and pytest-asyncio owns the main thread's
event loop: so a machine runs in a worker thread with an event loop, an app and an engine of
its own, and calls the app through httpx's ASGITransport on that loop.
"""

from __future__ import annotations

import asyncio

import httpx
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from booking_service.main import create_app
from tests.support.databases import wipe_tables
from tests.support.settings import make_settings


def run_machine(
    machine: type[RuleBasedStateMachine], database_url: str, machine_settings: settings
) -> None:
    """Run `machine` on `database_url`, in this (worker) thread's own event loop, with `loop`,
    `app`, `client` and `database_url` bound on it."""
    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        app = create_app(make_settings(database_url))
        lifespan = app.router.lifespan_context(app)
        loop.run_until_complete(lifespan.__aenter__())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m")
        try:
            bound = type(
                f"Bound{machine.__name__}",
                (machine,),
                {"loop": loop, "app": app, "client": client, "database_url": database_url},
            )
            run_state_machine_as_test(bound, settings=machine_settings)
        finally:
            loop.run_until_complete(client.aclose())
            loop.run_until_complete(lifespan.__aexit__(None, None, None))
            loop.run_until_complete(wipe_tables(database_url))
