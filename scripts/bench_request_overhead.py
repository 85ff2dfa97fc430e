"""What the request middleware (request id, metrics, one log line) costs per request.

Drives the real application in-process, straight through ASGI (no sockets, no server), with
and without `RequestInstrumentation`, and prints CPU microseconds per request. CPU time, not
wall time, so other work on the machine disturbs it less. Run:

    .venv/bin/python scripts/bench_request_overhead.py [requests]
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message

from booking_service import metrics
from booking_service.config import Settings
from booking_service.logs import JsonFormatter
from booking_service.main import create_app

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: Message) -> None:
    return None


async def drive(stack: ASGIApp, app: FastAPI, path: str, requests: int) -> float:
    """CPU microseconds per request."""
    started = time.process_time()
    for _ in range(requests):
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": list(HEADERS),
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
            "app": app,
        }
        await stack(scope, _receive, _send)
    return (time.process_time() - started) / requests * 1e6


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite+aiosqlite:///{directory}/bench.db"
        settings = Settings(
            _env_file=None, database_url=database, jwt_secret="x" * 48, rate_limit_enabled=False
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):  # GET /status/1 opens a session
            await measure(app, requests)


async def measure(app: FastAPI, requests: int) -> None:
    plain = FastAPI.build_middleware_stack(app)  # the same app without our middleware
    instrumented = app.build_middleware_stack()
    access = logging.getLogger("booking_service.access")
    handler = logging.FileHandler(os.devnull)  # formatted and written, then thrown away
    handler.setFormatter(JsonFormatter())

    for path in ("/health", "/status/1"):
        await drive(plain, app, path, requests // 10)  # warm-up
        await drive(instrumented, app, path, requests // 10)
        results = {}
        for _ in range(3):  # interleaved rounds, best of three
            access.setLevel(logging.WARNING)
            access.handlers = []
            results.setdefault("no middleware", []).append(await drive(plain, app, path, requests))
            results.setdefault("id + metrics", []).append(
                await drive(instrumented, app, path, requests)
            )
            access.setLevel(logging.INFO)
            access.handlers = [handler]
            access.propagate = False
            results.setdefault("id + metrics + JSON line", []).append(
                await drive(instrumented, app, path, requests)
            )
        base = min(results["no middleware"])
        for label, values in results.items():
            best = min(values)
            print(f"GET {path:10} {label:26} {best:7.1f} us/request  (+{best - base:5.1f})")

    started = time.process_time()
    for _ in range(100):
        metrics.render()
    print(
        f"GET /metrics body ({len(metrics.render())} bytes): "
        f"{(time.process_time() - started) * 10:.2f} ms CPU to render"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
