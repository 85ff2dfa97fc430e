"""The OpenAPI document as a contract: complete, valid, committed, and true to the server."""

from __future__ import annotations

import difflib
import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from booking_service.cli import EXPORT_COMMAND, EXPORT_PATH, published_openapi
from booking_service.config import Settings
from booking_service.main import create_app
from booking_service.schemas.errors import ErrorResponse
from tests.contract import Answer, Contract
from tests.support.api import register_and_login
from tests.support.apps import OPENAPI_FILE, OPERATION_IDS, OPERATIONS_ROUTES
from tests.support.databases import Database, wipe_tables
from tests.support.servers import BOOKING_SERVICE
from tests.support.settings import clean_env

COMMITTED = OPENAPI_FILE
REPO_ROOT = COMMITTED.parent
assert COMMITTED.name == EXPORT_PATH
PUBLIC_OPERATIONS = {"register", "login", *OPERATIONS_ROUTES}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(published_openapi())
    return loaded


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_committed_document_is_current() -> None:
    live = published_openapi()
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    if committed != live:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                live.splitlines(keepends=True),
                f"{EXPORT_PATH} (committed)",
                f"{EXPORT_PATH} (the app now)",
                n=2,
            )
        )
        pytest.fail(
            f"{EXPORT_PATH} differs from the app's OpenAPI document. In the repository root,"
            f" run\n    {EXPORT_COMMAND}\nand commit the file.\n{diff[:4000]}"
        )


def test_export_command_writes_the_committed_bytes_whatever_the_environment(
    tmp_path: Path,
) -> None:
    # A developer's configuration must not leak into the published document.
    (tmp_path / ".env").write_text("MAX_TICKETS_PER_EVENT=7\n", encoding="utf-8")
    result = subprocess.run(
        [BOOKING_SERVICE, "openapi", "--output", "out.json"],
        cwd=tmp_path,
        env=clean_env(MAX_TICKETS_PER_EVENT="5", ENVIRONMENT="prod"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.json").read_bytes() == COMMITTED.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "out.json"], "nothing else"


async def test_served_document_is_the_committed_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(COMMITTED.read_text(encoding="utf-8"))


def test_document_passes_the_openapi_validator(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_operation_is_named_tagged_and_described(document: dict[str, Any]) -> None:
    seen = set()
    for method, path, operation in operations(document):
        where = f"{method} {path}"
        seen.add(operation["operationId"])
        assert operation["operationId"].isidentifier(), where
        assert operation.get("tags"), f"{where} has no tag"
        assert operation.get("summary"), f"{where} has no summary"
        assert operation.get("description"), f"{where} has no description"
    assert seen == OPERATION_IDS


def test_every_status_an_operation_can_give_is_documented(document: dict[str, Any]) -> None:
    """Which errors each operation documents follows from its shape, not from memory."""
    for method, path, operation in operations(document):
        where = f"{method} {path} ({operation['operationId']})"
        statuses = set(operation["responses"])
        secured = operation["operationId"] not in PUBLIC_OPERATIONS
        has_body = "requestBody" in operation
        has_params = bool(operation.get("parameters"))

        assert "500" in statuses, where
        if operation["operationId"] not in OPERATIONS_ROUTES:
            assert {"429", "503"} <= statuses, f"{where}: any API route can be limited or busy"
        assert ("401" in statuses) == secured or operation["operationId"] == "login", where
        assert ("422" in statuses) == (has_body or has_params), where
        assert ("400" in statuses) == has_body, f"{where}: an unreadable body gives 400"
        assert any(s.startswith("2") for s in statuses), where
        for status, response in operation["responses"].items():
            assert response.get("description"), f"{where} {status} has no description"
            if status.startswith(("4", "5")):
                media = response["content"]["application/json"]
                assert media["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, where
                assert media["examples"], f"{where} {status} has no example"
                for example in media["examples"].values():
                    ErrorResponse.model_validate(example["value"])


def test_domain_errors_are_documented_where_they_happen(document: dict[str, Any]) -> None:
    def codes(operation_id: str, status: str) -> set[str]:
        for _, _, operation in operations(document):
            if operation["operationId"] == operation_id:
                examples = operation["responses"][status]["content"]["application/json"]
                return {e["value"]["code"] for e in examples["examples"].values()}
        raise AssertionError(operation_id)

    assert codes("register", "409") == {"username_taken"}
    assert codes("login", "401") == {"invalid_credentials"}
    assert codes("book_ticket", "404") == {"event_not_found"}
    assert codes("book_ticket", "409") == {
        "already_booked",
        "event_closed",
        "event_cancelled",
        "sales_not_started",
        "sales_ended",
        "party_too_large",
        "idempotency_key_in_use",
    }
    assert {"checked_in", "offer_all_or_nothing"} <= codes("cancel_booking", "409")
    assert codes("cancel_booking", "404") == {"event_not_found", "booking_not_found"}
    assert codes("get_event_status", "404") == {"event_not_found"}
    assert codes("list_my_bookings", "401") == {"not_authenticated", "invalid_token"}
    assert codes("accept_offer", "404") == {"event_not_found", "offer_not_found"}
    assert codes("accept_offer", "410") == {"offer_expired"}
    assert codes("decline_offer", "410") == {"offer_expired"}
    assert codes("accept_offer", "409") == {"event_cancelled"}
    for operation_id in ("update_event", "close_event", "cancel_event", "list_event_bookings"):
        assert codes(operation_id, "403") == {"not_event_owner"}, operation_id
        assert codes(operation_id, "404") == {"event_not_found"}, operation_id
    assert codes("update_event", "409") == {
        "event_cancelled",
        "capacity_below_held",
        "capacity_below_party",
        "sale_window_empty",
    }
    assert codes("close_event", "409") == {"event_cancelled"}
    for operation_id in IDEMPOTENT_OPERATIONS:
        assert "idempotency_key_in_use" in codes(operation_id, "409")
        assert {"validation_error", "idempotency_key_reused"} <= codes(operation_id, "422")


IDEMPOTENT_OPERATIONS = {"create_event", "book_ticket", "cancel_booking"}


def test_idempotency_key_and_replay_header_are_declared_where_they_work(
    document: dict[str, Any],
) -> None:
    for _, _, operation in operations(document):
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        if operation["operationId"] not in IDEMPOTENT_OPERATIONS:
            assert headers == [], operation["operationId"]
            continue
        [key] = headers
        assert key["name"] == "Idempotency-Key"
        assert key["required"] is False
        schema = key["schema"]
        assert (schema["type"], schema["minLength"], schema["maxLength"]) == ("string", 1, 255)
        assert schema["pattern"] == "^[!-~]+$"
        assert "anyOf" not in schema, "a header is absent or a string, never null"
        replayable = {
            status
            for status, response in operation["responses"].items()
            if "Idempotent-Replayed" in response.get("headers", {})
        }
        statuses = set(operation["responses"])
        successes = {status for status in statuses if status.startswith("2")}
        # Stored refusals (404, 409) are replayed too.
        assert replayable == successes | ({"404", "409"} & statuses), operation["operationId"]


def test_request_bodies_publish_defaults_in_words_not_as_keywords(
    document: dict[str, Any],
) -> None:
    """A field with a default is optional for every generator: openapi-typescript would make a
    `default` field required, others would send the default every time (schemas/common.py)."""
    components = document["components"]["schemas"]
    checked = set()
    for _, _, operation in operations(document):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        name = body["schema"]["$ref"].rsplit("/", 1)[-1]
        checked.add(name)
        for field, prop in components[name]["properties"].items():
            assert "default" not in prop, f"{name}.{field}"
    event = components["EventCreate"]
    assert event["required"] == ["name", "tickets"]
    assert event["properties"]["waitlist_mode"]["description"].endswith('Default: `"instant"`.')
    assert event["properties"]["offer_seconds"]["description"].endswith("Default: `900`.")
    assert {"EventCreate", "EventUpdate", "BookingRequest", "UserCreate"} <= checked


def test_every_model_field_has_a_description_and_an_example(document: dict[str, Any]) -> None:
    missing = []
    for name, schema in document["components"]["schemas"].items():
        if not schema.get("description"):
            missing.append(f"{name}: no description")
        for field, prop in schema.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{name}.{field}: no description")
            if not (prop.get("examples") or "example" in prop):
                missing.append(f"{name}.{field}: no example")
    assert not missing, "\n".join(missing)


def test_every_example_matches_its_schema(document: dict[str, Any]) -> None:
    """Examples are part of the contract: a client or a fuzzer may take them at their word."""

    def check(value: Any, schema: dict[str, Any], where: str) -> None:
        # The document's components ride along, so `#/components/...` references resolve.
        validator = OAS31Validator({**schema, "components": document["components"]})
        problems = [error.message for error in validator.iter_errors(value)]
        assert not problems, f"{where}: {problems}"

    checked = 0
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            for example in prop.get("examples", []):
                check(example, prop, f"{name}.{field}")
                checked += 1
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/json", {})
            for example_name, example in media.get("examples", {}).items():
                check(example["value"], media["schema"], f"{method} {path} {status} {example_name}")
                checked += 1
    assert checked > 100


def test_bearer_scheme_is_declared_and_used(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"] == {
        "BearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token from `POST /login`.",
        }
    }
    for _, _, operation in operations(document):
        expected = None if operation["operationId"] in PUBLIC_OPERATIONS else [{"BearerAuth": []}]
        assert operation.get("security") == expected, operation["operationId"]


def test_the_document_names_nothing_of_this_machine() -> None:
    text = published_openapi()
    for fragment in (str(REPO_ROOT), tempfile.gettempdir(), str(Path.home()), "sqlite", "127.0."):
        assert fragment not in text


async def test_published_ticket_maximum_is_the_one_enforced(
    settings_factory: Callable[..., Settings], database: Database
) -> None:
    app: FastAPI = create_app(settings_factory(max_tickets_per_event=50))
    tickets = app.openapi()["components"]["schemas"]["EventCreate"]["properties"]["tickets"]
    assert tickets["maximum"] == 50
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            try:
                headers = await register_and_login(http, "maxer")
                over = await http.post(
                    "/initialize", json={"name": "Gig", "tickets": 51}, headers=headers
                )
                at = await http.post(
                    "/initialize", json={"name": "Gig", "tickets": 50}, headers=headers
                )
            finally:
                await wipe_tables(database.url)
    assert over.status_code == 422
    assert over.json()["details"][0]["loc"] == ["body", "tickets"]
    assert at.status_code == 201


# Requests that go wrong in each way a client can get them wrong: (name, with a token?, path's
# eventId, query, body). Each operation must answer with a status it documents and, for an error,
# the ErrorResponse body.
BAD_REQUESTS: list[tuple[str, bool, str, str, bytes | None]] = [
    ("no token", False, "1", "", None),
    ("no body", True, "1", "", None),
    ("body not UTF-8", True, "1", "", b'{"eventId": "\xff"}'),
    ("body not JSON", True, "1", "", b"{"),
    ("unknown field", True, "1", "", b'{"surprise": 1}'),
    ("unknown event", True, "987654", "", b'{"eventId": 987654}'),
    ("bad path or query", True, "abc", "?limit=0", b"{}"),
]


async def test_errors_the_server_gives_are_documented(
    client: httpx.AsyncClient, document: dict[str, Any], contract: Contract
) -> None:
    """Each answer's status is one the operation lists, its body the documented shape, and an
    error's code one of its examples' codes."""
    auth = await register_and_login(client, "prober")
    problems = []
    for method, path, _ in operations(document):
        for name, with_token, event_id, query, body in BAD_REQUESTS:
            headers = {"Content-Type": "application/json", **(auth if with_token else {})}
            url = path.replace("{eventId}", event_id) + query
            response = await client.request(method, url, headers=headers, content=body)
            problems += [f"{p} with {name}" for p in contract.problems(Answer.of(response))]
        # A bad token is a 401 (or, where no token is needed, not an error at all).
        response = await client.request(
            method, path.replace("{eventId}", "1"), headers={"Authorization": "Bearer x.y.z"}
        )
        problems += [f"{p} with a bad token" for p in contract.problems(Answer.of(response))]
    assert not problems, "\n".join(problems)
