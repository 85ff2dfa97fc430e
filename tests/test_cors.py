"""CORS: off unless origins are listed; refusals in the error envelope; never * with credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from booking_service.config import Settings
from tests.support.apps import http_client, started_app
from tests.support.databases import Database
from tests.support.settings import make_settings

APP_ORIGIN = "https://tickets.example.com"
PREFLIGHT = {
    "Origin": APP_ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json", headers={"Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("access-control-")]
    preflight = await client.options("/book", headers=PREFLIGHT)
    assert preflight.status_code == 405
    assert preflight.json()["code"] == "method_not_allowed"
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture
async def cors_app(sqlite_database: Database) -> AsyncIterator[FastAPI]:
    settings = make_settings(sqlite_database.url, cors_allow_origins=APP_ORIGIN)
    async with started_app(settings) as app:
        yield app


async def test_listed_origins_only(cors_app: FastAPI) -> None:
    async with http_client(cors_app) as http:
        allowed = await http.options("/book", headers=PREFLIGHT)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "access-control-allow-credentials" not in allowed.headers
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        # An organizer changing an event from the browser app (PATCH /events/{eventId}).
        patch = await http.options(
            "/events/1", headers={**PREFLIGHT, "Access-Control-Request-Method": "PATCH"}
        )
        assert patch.status_code == 200
        assert "PATCH" in patch.headers["access-control-allow-methods"]

        refused = await http.options("/book", headers={**PREFLIGHT, "Origin": "https://evil.test"})
        assert refused.status_code == 403
        assert refused.json()["code"] == "cors_refused"
        assert "access-control-allow-origin" not in refused.headers

        simple = await http.get("/me/bookings", headers={"Origin": APP_ORIGIN})
        assert simple.status_code == 401  # CORS headers even on errors, so browsers can read them
        assert simple.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "retry-after" in simple.headers["access-control-expose-headers"].lower()
        other = await http.get("/me/bookings", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers


def test_wildcard_with_credentials_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="cannot be combined"):
        Settings(
            _env_file=None,
            jwt_secret="k" * 40,
            cors_allow_origins="*",
            cors_allow_credentials=True,
        )


@pytest.mark.parametrize(
    "origins", ["tickets.example.com", "https://tickets.example.com/app", "ftp://x.example"]
)
def test_origins_must_be_origins(origins: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(_env_file=None, jwt_secret="k" * 40, cors_allow_origins=origins)


def test_origins_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://a.example, http://localhost:5173")
    settings = Settings(_env_file=None, jwt_secret="k" * 40)
    assert settings.cors_allow_origins == ["https://a.example", "http://localhost:5173"]
