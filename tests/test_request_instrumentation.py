"""Every request: an X-Request-ID, one structured log line, a latency sample by route template."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from booking_service.logs import JsonFormatter, PlainFormatter
from booking_service.main import create_app
from tests.support.apps import app_client
from tests.support.settings import make_settings

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
ACCESS_LOGGER = "booking_service.access"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'i.db'}")) as client:
        yield client


def request_count(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0.0


@pytest.fixture
def json_logs() -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """Log lines as the JSON handler writes them (formatted when emitted, as in production)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines(logger: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in stream.getvalue().splitlines() if line]
        return [line for line in parsed if line["logger"] == logger]

    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.parametrize(
    "request_id", ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "a" * 128]
)
async def test_a_sane_incoming_request_id_is_kept(http: httpx.AsyncClient, request_id: str) -> None:
    response = await http.get("/health", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["", "a" * 129, "two words", 'x"}{"level":"error', "line\tbreak", "caf\u00e9".encode()],
)
async def test_an_unsafe_incoming_request_id_is_replaced(
    http: httpx.AsyncClient, request_id: str | bytes
) -> None:
    response = await http.get("/health", headers={"X-Request-ID": request_id})
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


async def test_each_request_gets_its_own_id(http: httpx.AsyncClient) -> None:
    first = (await http.get("/health")).headers["x-request-id"]
    second = (await http.post("/book", json={})).headers["x-request-id"]  # a 401 has one too
    assert GENERATED_ID.fullmatch(first)
    assert GENERATED_ID.fullmatch(second)
    assert first != second


async def test_one_log_line_per_request_with_the_route_template(
    http: httpx.AsyncClient, json_logs: Callable[[str], list[dict[str, Any]]]
) -> None:
    response = await http.get("/status/4242", headers={"X-Request-ID": "trace-1"})
    assert response.status_code == 401
    [line] = json_logs(ACCESS_LOGGER)
    assert line["request_id"] == "trace-1"
    assert line["method"] == "GET"
    assert line["route"] == "/status/{eventId}"
    assert line["path"] == "/status/4242"
    assert line["status"] == 401
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"


async def test_metrics_are_labelled_by_template_not_by_path(http: httpx.AsyncClient) -> None:
    before = request_count("GET", "/status/{eventId}", 401)
    for event_id in (1, 2, 987654):
        await http.get(f"/status/{event_id}")
    assert request_count("GET", "/status/{eventId}", 401) == before + 3
    routes = {
        sample.labels["route"]
        for metric in REGISTRY.collect()
        if metric.name == "http_request_duration_seconds"
        for sample in metric.samples
    }
    assert not any(route.startswith("/status/") and "{" not in route for route in routes)


async def test_clients_cannot_mint_new_label_values(http: httpx.AsyncClient) -> None:
    before_unmatched = request_count("GET", "unmatched", 404)
    before_other = request_count("OTHER", "/health", 405)
    await http.get("/no/such/page/123")
    await http.request("BREW", "/health")
    assert request_count("GET", "unmatched", 404) == before_unmatched + 1
    assert request_count("OTHER", "/health", 405) == before_other + 1


async def test_a_500_carries_its_request_id_in_the_header_and_the_error_log(
    tmp_path: Path, json_logs: Callable[[str], list[dict[str, Any]]]
) -> None:
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"))

    async def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_api_route("/boom", boom)
    before = request_count("GET", "/boom", 500)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.headers["x-request-id"] == "boom-1"
    [error] = json_logs("booking_service.errors")
    assert error["level"] == "error"
    assert error["request_id"] == "boom-1"
    assert "kaboom" in error["exception"]
    [line] = json_logs(ACCESS_LOGGER)
    assert line["status"] == 500
    assert line["request_id"] == "boom-1"
    assert request_count("GET", "/boom", 500) == before + 1


def test_plain_lines_carry_the_request_id_too() -> None:
    from booking_service.logs import REQUEST_ID

    record = logging.LogRecord("booking_service", logging.WARNING, __file__, 1, "hello", (), None)
    token = REQUEST_ID.set("req-9")
    try:
        line = PlainFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)
    assert line.endswith("WARNING booking_service: hello [req-9]")
    assert "req-9" not in PlainFormatter().format(record)
