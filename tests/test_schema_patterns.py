"""Every `pattern` in the OpenAPI document means exactly what the server checks.

JSON Schema reads a pattern as an ECMA-262 regular expression, while the server validates with
pydantic. Where the two differ (what `\\s` covers, say: U+001C is white space to Python and not
to ECMA-262, U+FEFF the other way round), a client that validates against the document sends
bodies the server refuses, or the reverse. So the same strings go to the document's schema,
read by ECMA-262 itself (Node's RegExp, with the `u` flag as JSON Schema validators use it)
and by jsonschema-rs (the validator schemathesis checks with), and to the API: each reading
must call a string valid exactly when the API takes it.

Python's `re` is not one of the readings: it is not ECMA-262 (its `$` also matches before a
final newline), and nothing that reads the document is expected to use it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI

from booking_service.schemas.events import NAME_WHITE_SPACE
from tests.support.api import register_and_login
from tests.support.environment import require_program

# Every character some regex dialect, Unicode or str.strip() calls white space, or that looks
# like it: the ones where readings of `\s` part ways.
SPACE_LIKE = (
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
)


def candidates() -> list[str]:
    """Strings at the edges of every pattern in the document."""
    strings = ["", "a", "ab", "abc", "a b", "a\n", "abc\n", "\nabc", "a" * 50, "a" * 51]
    strings += ["user_1.x-y", "Ünïcode", "é", "ab\x7f", "ab~", "!", "~", "a b c", "\x00ab"]
    strings += ["😀", "a😀b", "😀" * 200, "😀" * 201, "a" * 200, "a" * 201, "a" * 199 + "\x1c"]
    strings += [" " + "a" * 200 + " ", "\t" + "a" * 201, "a" * 200 + "\x1c"]
    # A ticket code's length, one off, and a valid code with a final newline or a stray character.
    strings += ["a" * 42, "aZ09_-" * 7 + "x", "a" * 44, "a" * 43 + "\n", "a" * 42 + "~"]
    for space in SPACE_LIKE:
        strings += [space, space + "ab", "ab" + space, "a" + space + "b"]
        strings += ["a" * 199 + space, space + "a" * 200 + space]
    return strings


@dataclass(frozen=True)
class Site:
    """Where a pattern is used: a body schema's property, or a parameter."""

    where: str  # "body" or the parameter's location ("header", ...)
    owner: str  # the body schema, or the parameter's name
    field: str
    schema: dict[str, Any]


def pattern_sites(document: dict[str, Any]) -> Iterator[Site]:
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if "pattern" in prop:
                yield Site("body", name, field, prop)
    for methods in document["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if "pattern" in json.dumps(parameter["schema"]):
                    [string] = [
                        s
                        for s in parameter["schema"].get("anyOf", [parameter["schema"]])
                        if s.get("type") == "string"
                    ]
                    yield Site(parameter["in"], parameter["name"], parameter["name"], string)


# How to send a value for each site, and where a refusal of it points.
Send = Callable[[httpx.AsyncClient, dict[str, str], str], Awaitable[httpx.Response]]


async def _event_name(
    client: httpx.AsyncClient, auth: dict[str, str], value: str
) -> httpx.Response:
    return await client.post("/initialize", json={"name": value, "tickets": 1}, headers=auth)


async def _username(client: httpx.AsyncClient, _auth: dict[str, str], value: str) -> httpx.Response:
    return await client.post("/register", json={"username": value, "password": "password123"})


async def _idempotency_key(
    client: httpx.AsyncClient, auth: dict[str, str], value: str
) -> httpx.Response:
    headers = {**auth, "Idempotency-Key": value.encode("latin-1")}
    return await client.post("/book", json={"eventId": 1}, headers=headers)


async def _transfer_recipient(
    client: httpx.AsyncClient, auth: dict[str, str], value: str
) -> httpx.Response:
    return await client.post(
        "/tickets/transfer", json={"eventId": 1, "toUsername": value}, headers=auth
    )


async def _ticket_code(
    client: httpx.AsyncClient, auth: dict[str, str], value: str
) -> httpx.Response:
    return await client.post("/events/1/check-in", json={"code": value}, headers=auth)


SENDERS: dict[tuple[str, str, str], tuple[Send, list[str]]] = {
    ("body", "EventCreate", "name"): (_event_name, ["body", "name"]),
    ("body", "UserCreate", "username"): (_username, ["body", "username"]),
    ("body", "TransferRequest", "toUsername"): (_transfer_recipient, ["body", "toUsername"]),
    ("body", "CheckInRequest", "code"): (_ticket_code, ["body", "code"]),
    ("header", "Idempotency-Key", "Idempotency-Key"): (
        _idempotency_key,
        ["header", "Idempotency-Key"],
    ),
}


def fits_a_header(value: str) -> bool:
    """What an HTTP field value can carry, as a server hands it over (trimmed)."""
    allowed = all(c == "\t" or " " <= c <= "~" or "\x80" <= c <= "\xff" for c in value)
    return allowed and value == value.strip(" \t")


def ecma_262_matches(pairs: list[tuple[str, str]]) -> list[bool]:
    """Whether each string matches its pattern, as ECMA-262 reads it (Node, `u` flag)."""
    node = require_program("node")
    script = (
        "const pairs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(pairs.map(([p, s]) => new RegExp(p, 'u').test(s))));"
    )
    result = subprocess.run(
        [node, "-e", script],
        input=json.dumps(pairs),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    verdicts: list[bool] = json.loads(result.stdout)
    return verdicts


def shown(value: str) -> str:
    if len(value) <= 24:
        return repr(value)
    return f"{value[:6]!r} + ({len(value) - 12} more) + {value[-6:]!r}"


def refused_at(response: httpx.Response, loc: list[str]) -> bool:
    assert response.status_code < 500, response.text
    if response.status_code != 422:
        return False
    return any(detail["loc"] == loc for detail in response.json()["details"])


@pytest.fixture
async def auth(client: httpx.AsyncClient) -> dict[str, str]:
    return await register_and_login(client, "pattern-owner")


async def test_every_pattern_reads_as_the_server_checks(
    app: FastAPI, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sites: dict[tuple[str, str, str], Site] = {}
    for site in pattern_sites(app.openapi()):
        key = (site.where, site.owner, site.field)
        # A parameter used by several operations: the same schema everywhere, tested once.
        assert sites.setdefault(key, site) == site, key
    assert sites, "the document has patterns"
    unknown = set(sites) - set(SENDERS)
    assert not unknown, f"new patterns {unknown}: teach this test how to send them"
    disagreements: list[str] = []
    for key, site in sites.items():
        send, loc = SENDERS[key]
        strings = [s for s in candidates() if site.where == "body" or fits_a_header(s)]
        pattern = site.schema["pattern"]
        rust = jsonschema_rs.validator_for(site.schema)
        without_pattern = jsonschema_rs.validator_for(
            {k: v for k, v in site.schema.items() if k != "pattern"}
        )
        ecma = ecma_262_matches([(pattern, s) for s in strings])
        for value, ecma_match in zip(strings, ecma, strict=True):
            taken = not refused_at(await send(client, auth, value), loc)
            readings = {
                "ECMA-262": ecma_match and without_pattern.is_valid(value),
                "jsonschema-rs": rust.is_valid(value),
            }
            for reading, valid in readings.items():
                if valid != taken:
                    verdict = "valid" if valid else "invalid"
                    disagreements.append(
                        f"{key[1]}.{key[2]} = {shown(value)}: {reading} reads it {verdict}, "
                        f"the API {'takes' if taken else 'refuses'} it"
                    )
    assert not disagreements, "\n".join(disagreements[:40])


def test_name_white_space_is_unicode_white_space() -> None:
    # The Unicode White_Space property, the one definition the name pattern spells out.
    white_space = {
        *range(0x09, 0x0E),
        0x20,
        0x85,
        0xA0,
        0x1680,
        *range(0x2000, 0x200B),
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
    }
    assert {ord(c) for c in NAME_WHITE_SPACE} == white_space
