"""GET /health and GET /ready: liveness touches nothing, readiness checks what is configured."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from booking_service.main import create_app
from tests.support.apps import app_client
from tests.support.environment import require_redis
from tests.support.servers import free_port
from tests.support.settings import make_settings

UNREACHABLE_MARIADB = "mysql+asyncmy://root@127.0.0.1:{port}/nothing"


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> str:
    """A database that answers (SELECT 1 needs no tables)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) but never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_health_answers_without_touching_anything() -> None:
    # No lifespan has run: there is no engine at all, and /health still answers.
    app = create_app(make_settings("sqlite+aiosqlite:///./never-created.db"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_not_ready_when_the_database_refuses() -> None:
    settings = make_settings(UNREACHABLE_MARIADB.format(port=free_port()))
    async with app_client(settings) as http:
        response = await http.get("/ready")
        assert (await http.get("/health")).status_code == 200, "liveness does not care"
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert [detail["loc"] for detail in body["details"]] == [["database"]]
    assert body["details"][0]["type"] == "unavailable"


async def test_not_ready_when_the_database_hangs(silent_port: int) -> None:
    settings = make_settings(
        UNREACHABLE_MARIADB.format(port=silent_port), ready_timeout_seconds=0.3
    )
    async with app_client(settings) as http:
        response = await http.get("/ready", timeout=10)
    assert response.status_code == 503
    assert response.json()["details"][0]["msg"] == "no answer within 0.3s"


async def test_ready_checks_redis_when_rate_limits_live_there(empty_sqlite: str) -> None:
    url = require_redis()
    settings = make_settings(empty_sqlite, rate_limit_enabled=True, rate_limit_storage_url=url)
    async with app_client(settings) as http:
        response = await http.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.parametrize(
    "storage", ["redis://127.0.0.1:{port}/0", "redis+unix:///nonexistent/redis-{port}.sock"]
)
async def test_redis_down_is_degraded_but_ready(storage: str, empty_sqlite: str) -> None:
    # Rate limits fail open without Redis: one shared Redis out must not take every replica
    # out of its load balancer.
    storage = storage.format(port=free_port())
    settings = make_settings(empty_sqlite, rate_limit_enabled=True, rate_limit_storage_url=storage)
    async with app_client(settings) as http:
        response = await http.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "degraded"}}


async def test_not_ready_names_redis_degraded_beside_the_database() -> None:
    settings = make_settings(
        UNREACHABLE_MARIADB.format(port=free_port()),
        rate_limit_enabled=True,
        rate_limit_storage_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    async with app_client(settings) as http:
        response = await http.get("/ready")
    assert response.status_code == 503
    details = response.json()["details"]
    assert [(d["loc"], d["type"]) for d in details] == [
        (["database"], "unavailable"),
        (["redis"], "degraded"),
    ]


async def test_redis_is_not_checked_when_rate_limits_are_off_or_in_memory(
    empty_sqlite: str,
) -> None:
    for overrides in (
        {"rate_limit_enabled": False, "rate_limit_storage_url": "redis://127.0.0.1:1/0"},
        {"rate_limit_enabled": True, "rate_limit_storage_url": "memory://"},
    ):
        async with app_client(make_settings(empty_sqlite, **overrides)) as http:
            response = await http.get("/ready")
        assert response.status_code == 200, overrides
        assert response.json()["checks"] == {"database": "ok"}
