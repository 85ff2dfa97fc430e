"""`booking-service serve --workers 2` as production runs it: real processes on MariaDB.

Metrics add up over the workers, and logs are JSON lines with one per request.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from booking_service.bench.seed import create_users
from tests.support.api import TokenFactory, create_event
from tests.support.databases import Database, create_mariadb_database
from tests.support.environment import require_mariadb
from tests.support.servers import BOOKING_SERVICE, ServerProcess, free_port, start_server
from tests.support.settings import clean_env, make_settings, production_env

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample(
    values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
async def two_workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[ServerProcess, Database]]:
    await require_mariadb()
    async with create_mariadb_database() as database:
        server = await asyncio.to_thread(
            start_server,
            tmp_path_factory.mktemp("serve"),
            workers=2,
            **production_env(database),
        )
        try:
            yield server, database
        finally:
            server.stop()


async def fresh_get(base_url: str, path: str) -> httpx.Response:
    # A new connection each time, so that either worker may answer.
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.get(path)


async def test_metrics_add_up_every_worker(two_workers: tuple[ServerProcess, Database]) -> None:
    server, database = two_workers
    owner, *users = await create_users(database.url, 41, prefix="metrics")
    tokens = TokenFactory(make_settings(database.url))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        event_id = await create_event(http, tokens.headers(owner), tickets=25)
        assert (await http.get(f"/status/{event_id}", headers=tokens.headers(owner))).is_success

    async def book(user_id: int) -> int:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            response = await http.post(
                "/book", json={"eventId": event_id}, headers=tokens.headers(user_id)
            )
            return response.status_code

    statuses = await asyncio.gather(*(book(user_id) for user_id in users))
    assert sorted(statuses) == [201] * 25 + [202] * 15

    for _ in range(6):  # whichever worker answers reports the sum over both
        response = await fresh_get(server.base_url, "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        values = samples(response.text)
        assert sample(values, "booking_outcomes_total", outcome="booked") == 25
        assert sample(values, "booking_outcomes_total", outcome="waitlisted") == 15
        book_count = "http_request_duration_seconds_count"
        assert sample(values, book_count, method="POST", route="/book", status="201") == 25
        assert sample(values, book_count, method="POST", route="/book", status="202") == 15
        assert (
            sample(values, book_count, method="GET", route="/status/{eventId}", status="200") == 1
        )

    files = {path.name for path in server.metrics_dir().glob("*.db")}
    pids = {match.group(1) for name in files if (match := re.search(r"_(\d+)\.db$", name))}
    assert len(pids) >= 2, f"every worker writes its own files: {sorted(files)}"


async def test_every_line_is_json_and_every_request_has_one(
    two_workers: tuple[ServerProcess, Database],
) -> None:
    server, _ = two_workers
    ids = [f"json-line-{i}" for i in range(6)]
    for request_id in ids:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            response = await http.get("/ready", headers={"X-Request-ID": request_id})
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
    await asyncio.to_thread(
        server.wait_for_lines, lambda line: '"json-line-5"' in line, count=1, timeout=10
    )
    lines = server.access_lines()  # json.loads of every output line, uvicorn's included
    mine = [line for line in lines if line["request_id"] in ids]
    assert [line["request_id"] for line in mine] == ids
    for line in mine:
        assert line["method"] == "GET"
        assert line["route"] == "/ready"
        assert line["status"] == 200
        assert line["duration_ms"] >= 0


def test_memory_rate_limits_with_several_workers_warn(tmp_path: Path) -> None:
    # The database is unreachable, so serve stops right after its start-up checks.
    unreachable = f"mysql+asyncmy://root@127.0.0.1:{free_port()}/nothing"
    outputs = {}
    for workers in (1, 3):
        result = subprocess.run(
            [BOOKING_SERVICE, "serve", "--workers", str(workers), "--port", str(free_port())],
            env=clean_env(
                DATABASE_URL=unreachable,
                RATE_LIMIT_ENABLED="true",
                RATE_LIMIT_STORAGE_URL="memory://",
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        outputs[workers] = result.stderr
    assert "memory:// with 3 workers" in outputs[3]
    assert "up to 3 times RATE_LIMIT" in outputs[3]
    assert "memory://" not in outputs[1]
