"""The OpenAPI document: its tags, what the configuration decides in it, and its stable text.

The committed `openapi.json` is the document of an app with `published_settings()`, rendered
by `render_openapi` (`booking-service openapi`, cli.py).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr

from booking_service.config import Settings

TAGS: list[dict[str, Any]] = [
    {"name": "auth", "description": "Create an account and exchange it for a token."},
    {"name": "events", "description": "Create events and see how many tickets are left."},
    {
        "name": "bookings",
        "description": "Book and cancel tickets, answer offers, see your bookings and history; "
        "a sold-out event puts you in its waiting list.",
    },
    {
        "name": "organizer",
        "description": "Only the event's owner: change, close or cancel it, see its bookings, "
        "line and history.",
    },
]


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Publish what the configuration decides, so that the document and the validator agree."""
    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build_document()  # cached by FastAPI in app.openapi_schema
            # The service refuses more tickets than MAX_TICKETS_PER_EVENT with a 422; say so.
            schemas = document["components"]["schemas"]
            schemas["EventCreate"]["properties"]["tickets"]["maximum"] = (
                settings.max_tickets_per_event
            )
            update = schemas["EventUpdate"]["properties"]["tickets"]["anyOf"]
            [number] = [option for option in update if option.get("type") == "integer"]
            number["maximum"] = settings.max_tickets_per_event
            # Likewise MAX_PER_USER_LIMIT for an event's max_per_user.
            schemas["EventCreate"]["properties"]["max_per_user"]["maximum"] = (
                settings.max_per_user_limit
            )
            update = schemas["EventUpdate"]["properties"]["max_per_user"]["anyOf"]
            [number] = [option for option in update if option.get("type") == "integer"]
            number["maximum"] = settings.max_per_user_limit
            restore_example_nulls(document)
            drop_null_from_optional_headers(document)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def drop_null_from_optional_headers(document: dict[str, Any]) -> None:
    """An optional header is absent or a string, never null: FastAPI's `str | None` says null
    is allowed, which a client or a fuzzer could only send as the text "null"."""
    for methods in document["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                if parameter["in"] != "header" or "anyOf" not in schema:
                    continue
                options = [s for s in schema["anyOf"] if s.get("type") != "null"]
                if len(options) == 1:
                    del schema["anyOf"]
                    schema.update(options[0])


def restore_example_nulls(document: dict[str, Any]) -> None:
    """Put back the nulls FastAPI drops from examples, so each example matches its schema.

    FastAPI renders the document without null values, examples included, which would leave
    `"details": null` or `"position": null` out of examples whose schema says they are present.
    """
    components = document["components"]["schemas"]
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            for example in prop.get("examples", []):
                _fill_nulls(example, prop, components)
    for methods in document["paths"].values():
        for operation in methods.values():
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    for example in media.get("examples", {}).values():
                        _fill_nulls(example["value"], media["schema"], components)


def _fill_nulls(value: Any, schema: dict[str, Any], components: dict[str, Any]) -> None:
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        schema = options[0]
    if isinstance(value, list) and "items" in schema:
        for item in value:
            _fill_nulls(item, schema["items"], components)
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value and _nullable(properties.get(name, {})):
                value[name] = None
        for name, item in value.items():
            if name in properties:
                _fill_nulls(item, properties[name], components)


def _nullable(schema: dict[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in schema.get("anyOf", []))


def published_settings() -> Settings:
    """The defaults, read from nowhere: the committed document must not depend on the machine.

    `model_construct` skips the environment, `.env` and the dev secret file; the secret is never
    used, since this app only renders its document.
    """
    return Settings.model_construct(jwt_secret=SecretStr("unused-only-renders-the-document"))


def render_openapi(document: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, a trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
