"""One error model: whatever a client sends, the answer is a 4xx in the envelope, never a 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from booking_service.app_state import app_state
from booking_service.bench.seed import create_users
from booking_service.schemas.common import MAX_DB_ID
from booking_service.services.events import EventService
from tests.support.api import TokenFactory
from tests.support.apps import http_client, started_app
from tests.support.databases import Database
from tests.support.servers import free_port
from tests.support.settings import make_settings

ENVELOPE_KEYS = {"message", "code", "details"}
# What any route with a JSON body can answer about the body alone.
BODY_ERRORS = (400, 413, 415, 422)
JSON = {"Content-Type": "application/json"}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


@pytest.fixture
async def auth(
    client: httpx.AsyncClient, database: Database, tokens: TokenFactory
) -> dict[str, str]:
    # Depends on `client`, which wipes the tables after the test.
    [user_id] = await create_users(database.url, 1)
    return tokens.headers(user_id)


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/no/such/route"), 404, "not_found")
    refused = await client.put("/book", json={"eventId": 1})
    assert_envelope(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "POST"
    # One path, two routers (events: GET; organizer: PATCH): Allow names both.
    refused = await client.options("/events/1")
    assert_envelope(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "GET, PATCH"


DEEP = 20_000  # deeper than Python's JSON parser recurses, well under the size limit


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        pytest.param(b'{"eventId": "\xe9"}', JSON, 400, "malformed_body", id="not UTF-8"),
        pytest.param('{"eventId": 1}'.encode("utf-16"), JSON, 400, "malformed_body", id="UTF-16"),
        pytest.param(
            '{"eventId": 1}'.encode("utf-16-le"), JSON, 400, "malformed_body", id="UTF-16LE"
        ),
        pytest.param(
            '{"eventId": 1}'.encode("utf-32-be"), JSON, 400, "malformed_body", id="UTF-32BE"
        ),
        pytest.param(b'{"eventId": 1}\x00', JSON, 400, "malformed_body", id="NUL byte"),
        pytest.param(
            '{"eventId": 1}'.encode("utf-16"),
            {"Content-Type": "application/json; charset=utf-16"},
            415,
            "unsupported_media_type",
            id="declared UTF-16",
        ),
        pytest.param(
            b'{"eventId": 1}',
            {"Content-Type": "application/json; charset=utf-16"},
            415,
            "unsupported_media_type",
            id="ASCII declared UTF-16",
        ),
        pytest.param(
            b'{"eventId": 1}',
            {"Content-Type": "application/json; charset=iso-8859-1"},
            415,
            "unsupported_media_type",
            id="declared Latin-1",
        ),
        pytest.param(b"[" * DEEP + b"]" * DEEP, JSON, 400, "malformed_body", id="nested deeply"),
        pytest.param(
            b'{"eventId": 1' + b"0" * 5000 + b"}", JSON, 400, "malformed_body", id="5000 digits"
        ),
        pytest.param(b'{"eventId": NaN}', JSON, 422, "validation_error", id="NaN"),
        pytest.param(b'{"eventId": Infinity}', JSON, 422, "validation_error", id="Infinity"),
        pytest.param(b'{"eventId": -Infinity}', JSON, 422, "validation_error", id="-Infinity"),
        pytest.param(b'{"eventId": 1e400}', JSON, 422, "validation_error", id="overflowing float"),
        pytest.param(b'{"eventId": 1', JSON, 422, "validation_error", id="truncated JSON"),
        pytest.param(b"", JSON, 422, "validation_error", id="empty body"),
        pytest.param(b"", {}, 422, "validation_error", id="no body, no content type"),
        pytest.param(b"null", JSON, 422, "validation_error", id="null"),
        pytest.param(b"[1]", JSON, 422, "validation_error", id="array"),
        pytest.param(b'{"eventId": "12"}', JSON, 422, "validation_error", id="numeric string"),
        pytest.param(b'{"eventId": true}', JSON, 422, "validation_error", id="boolean"),
        pytest.param(b'{"eventId": 1.5}', JSON, 422, "validation_error", id="fraction"),
        pytest.param(b'{"eventId": 0}', JSON, 422, "validation_error", id="zero"),
        pytest.param(b'{"eventId": 1, "userId": 2}', JSON, 422, "validation_error", id="extra"),
        pytest.param(
            b'{"eventId": ' + b"[" * 500 + b"]" * 500 + b"}",
            JSON,
            422,
            "validation_error",
            id="nested within limits",
        ),
        pytest.param(
            b'{"eventId": 1}',
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
            id="text/plain",
        ),
        pytest.param(
            b"eventId=1",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
            id="form",
        ),
        pytest.param(b'{"eventId": 1}', {}, 415, "unsupported_media_type", id="no content type"),
    ],
)
async def test_malformed_bodies_get_a_clear_4xx(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = await client.post("/book", content=body, headers={**auth, **headers})
    answer = assert_envelope(response, status, code)
    if status == 422:
        assert answer["details"], "validation errors say where"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/json ; Charset=Utf-8",
    ],
)
async def test_json_declared_utf8_is_read(
    client: httpx.AsyncClient, auth: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        "/book", content=b'{"eventId": 1}', headers={**auth, "Content-Type": content_type}
    )
    assert_envelope(response, 404, "event_not_found")


async def test_utf8_split_across_chunks_is_read(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # "é" is two bytes; a streamed body may cut between them.
    chunks = [b'{"name": "Caf\xc3', b'\xa9", "tickets": 1}']

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    response = await client.post("/initialize", content=body(), headers={**auth, **JSON})
    assert response.status_code == 201, response.text
    status = await client.get(f"/status/{response.json()['eventId']}", headers=auth)
    assert status.json()["event_name"] == "Café"


async def test_integral_floats_are_integers(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # JSON has one number type, and JSON Schema calls 1.0 an integer: so do we.
    response = await client.post("/book", content=b'{"eventId": 1.0}', headers={**auth, **JSON})
    assert_envelope(response, 404, "event_not_found")


async def test_ids_stop_where_json_numbers_stay_exact(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # Past 2**53 a double cannot tell neighbours apart, so the schema and the validator
    # would disagree at the bound; both stop at 2**53 - 1.
    assert MAX_DB_ID == 2**53 - 1
    at_bound = await client.post("/book", json={"eventId": MAX_DB_ID}, headers=auth)
    assert_envelope(at_bound, 404, "event_not_found")
    for too_big in (MAX_DB_ID + 1, 2**63 - 1, 2**63 + 191):
        response = await client.post("/book", json={"eventId": too_big}, headers=auth)
        assert_envelope(response, 422, "validation_error")
        assert_envelope(
            await client.get(f"/status/{too_big}", headers=auth), 422, "validation_error"
        )


async def test_bodies_over_the_limit_get_413_even_when_content_length_lies(
    client: httpx.AsyncClient, auth: dict[str, str], app: FastAPI
) -> None:
    limit = app_state(app).settings.max_request_body_bytes
    padding = b'{"eventId": 1, "pad": "' + b"x" * limit + b'"}'
    declared = await client.post("/book", content=padding, headers={**auth, **JSON})
    assert_envelope(declared, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length at all
        for _ in range(limit // 1000 + 2):
            yield b" " * 1000

    streamed = await client.post("/book", content=chunks(), headers={**auth, **JSON})
    assert_envelope(streamed, 413, "payload_too_large")
    lying = await client.post(
        "/book", content=padding, headers={**auth, **JSON, "Content-Length": "20"}
    )
    assert_envelope(lying, 413, "payload_too_large")
    # Right at the limit is still read and validated.
    at_limit = b'{"eventId": 1}'.ljust(limit, b" ")
    assert_envelope(
        await client.post("/book", content=at_limit, headers={**auth, **JSON}),
        404,
        "event_not_found",
    )


async def test_unexpected_errors_are_logged_with_a_request_id_and_hidden(
    app: FastAPI,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_list(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("connection string mysql://admin:hunter2@db")

    monkeypatch.setattr(EventService, "list", broken_list)
    caplog.set_level(logging.ERROR)
    async with http_client(app, raise_app_exceptions=False) as http:
        response = await http.get("/events", headers=auth)
    body = assert_envelope(response, 500, "internal_error")
    request_id = response.headers["x-request-id"]
    assert request_id in body["message"]
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None, "the traceback goes to the log"


# Operations routes: never rate limited, and they report database trouble themselves.
OPERATIONS = {"GET /health", "GET /ready", "GET /metrics"}


async def test_openapi_declares_the_envelope_for_every_error(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    envelope = "#/components/schemas/ErrorResponse"
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) >= 9
    for name, operation in operations:
        responses = operation["responses"]
        errors = {int(status) for status in responses if int(status) >= 400}
        for status in errors:
            schema = responses[str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": envelope}, (name, status)
        expected = {500} if name in OPERATIONS else {429, 500, 503}
        if "requestBody" in operation:
            expected |= set(BODY_ERRORS)
        if operation.get("security"):
            expected.add(401)
        if operation.get("parameters"):
            expected.add(422)
        assert expected <= errors, (name, sorted(expected - errors))
        if 429 in errors:
            assert "Retry-After" in responses["429"]["headers"], name
        if 401 in errors:
            assert "WWW-Authenticate" in responses["401"]["headers"], name


async def test_the_published_tickets_maximum_is_the_configured_one(
    database: Database, auth: dict[str, str]
) -> None:
    settings = make_settings(database.url, max_tickets_per_event=500)
    async with started_app(settings) as app, http_client(app) as http:
        spec = (await http.get("/openapi.json")).json()
        tickets = spec["components"]["schemas"]["EventCreate"]["properties"]["tickets"]
        assert tickets["maximum"] == 500
        over = await http.post("/initialize", json={"name": "x", "tickets": 501}, headers=auth)
        assert_envelope(over, 422, "validation_error")
        at = await http.post("/initialize", json={"name": "x", "tickets": 500}, headers=auth)
        assert at.status_code == 201


async def test_an_unreachable_database_is_a_503_to_retry_not_a_500() -> None:
    # Nothing listens there: every transaction fails to connect.
    settings = make_settings(f"mysql+asyncmy://root@127.0.0.1:{free_port()}/nowhere")
    tokens = TokenFactory(settings)
    async with started_app(settings) as app, http_client(app) as http:
        for path, body in (("/book", {"eventId": 1}), ("/cancel", {"eventId": 1})):
            response = await http.post(path, json=body, headers=tokens.headers(1))
            assert_envelope(response, 503, "busy")
            assert response.headers["retry-after"] == "1"
        response = await http.get("/status/1", headers=tokens.headers(1))
        assert_envelope(response, 503, "busy")
