"""Whether the service takes party bookings yet (issue 16), read from its own OpenAPI document.

The tests that drive parties through the real service are written ahead of it: they skip,
saying why, exactly while the request body of POST /book has no `quantity` property, and run
(under CI=true too) from the moment it has one. A document that cannot be read that way is a
failure, never a skip.
"""

from __future__ import annotations

from typing import Any

import pytest

from booking_service.main import create_app
from tests.support.settings import make_settings


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def app_document() -> dict[str, Any]:
    # Building the app connects to nothing (the lifespan does), so any URL will do.
    document: dict[str, Any] = create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi()
    return document


def book_request_properties(document: dict[str, Any]) -> set[str]:
    """The properties of POST /book's JSON body, as the document says."""
    body = document["paths"]["/book"]["post"]["requestBody"]["content"]["application/json"]
    schema = _resolve(document, body["schema"])
    properties = schema.get("properties")
    assert isinstance(properties, dict), f"POST /book body has no properties: {schema}"
    return set(properties)


def party_api_missing(document: dict[str, Any]) -> str | None:
    """Why party tests cannot run yet, or None once POST /book takes `quantity`."""
    properties = book_request_properties(document)
    assert "eventId" in properties, f"POST /book body lost eventId: {sorted(properties)}"
    if "quantity" in properties:
        return None
    return (
        "party bookings are not in the API yet: POST /book's body has no `quantity` "
        f"(properties: {sorted(properties)})"
    )


PARTY_API_MISSING = party_api_missing(app_document())
requires_party_api = pytest.mark.skipif(
    PARTY_API_MISSING is not None, reason=PARTY_API_MISSING or "party API present"
)
