"""Preparing a run: users in the database, tokens signed as the server signs, events via the API.

Registering through HTTP would cost a password hash per user (tens of ms of CPU each) and
measure the hashing, not the booking path: the benchmark and the tests insert users in bulk,
all sharing one precomputed hash, and sign their tokens with the server's own JWT secret.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from booking_service.bench.http import HttpConnection, build_request, open_connection
from booking_service.bench.invariants import LOOKUP_BATCH
from booking_service.bench.scenarios import BenchUser, Plan, Scenario
from booking_service.config import Settings
from booking_service.db import connect
from booking_service.models import User
from booking_service.security import PasswordHasher, TokenCodec

# Users made in bulk share one real hash, so they can also log in with this password.
BULK_PASSWORD = "password123"  # noqa: S105 - a known test password, by design
# Events are created through the API, a few at a time.
EVENT_CONNECTIONS = 8
# Rows per INSERT batch: well inside every driver's limits (look-ups: invariants.LOOKUP_BATCH).
INSERT_BATCH = 5_000


@cache
def bulk_password_hash() -> str:
    """One argon2id hash of BULK_PASSWORD at the cheapest cost (the parameters travel inside)."""
    hasher = PasswordHasher(memory_kib=8 * 1024, time_cost=1, concurrency=1)
    try:
        return hasher.hash_sync(BULK_PASSWORD)
    finally:
        hasher.close()


def bulk_username(prefix: str, index: int) -> str:
    return f"{prefix}{index:06d}"


async def create_users(url: str, count: int, prefix: str = "user") -> list[int]:
    """Insert `count` users in bulk (one shared password hash) and return their ids in order.

    They are named bulk_username(prefix, i); the prefix must not be in use yet.
    """
    names = [bulk_username(prefix, i) for i in range(count)]
    password_hash = bulk_password_hash()
    ids: dict[str, int] = {}
    async with connect(url) as engine, engine.begin() as conn:
        for start in range(0, count, INSERT_BATCH):
            batch = names[start : start + INSERT_BATCH]
            await conn.execute(
                insert(User), [{"username": name, "password_hash": password_hash} for name in batch]
            )
        for start in range(0, count, LOOKUP_BATCH):
            batch = names[start : start + LOOKUP_BATCH]
            rows = await conn.execute(
                select(User.id, User.username).where(User.username.in_(batch))
            )
            ids.update({row.username: row.id for row in rows})
    return [ids[name] for name in names]


def mint_tokens(settings: Settings, users: Sequence[tuple[int, str]]) -> list[str]:
    """A valid bearer token for each (user id, username), signed as the server signs them."""
    codec = TokenCodec.from_settings(settings)
    return [codec.issue(user_id, username) for user_id, username in users]


class PreparationFailed(Exception):
    """The server would not create the bench's events; the message says what to fix."""


# Far enough ahead never to open before the load sets the real moment.
OPENING_PLACEHOLDER = "9000-01-01T00:00:00Z"


async def create_events(
    host: str,
    port: int,
    *,
    host_header: str,
    token: str,
    count: int,
    tickets: int,
    name: str,
    fields: dict[str, Any] | None = None,
) -> list[int]:
    """Create `count` events through `POST /initialize`, as the owner whose token this is;
    `fields` adds to the body."""
    body = json.dumps({"name": name, "tickets": tickets, **(fields or {})}).encode()
    request = build_request("POST", "/initialize", host=host_header, token=token, body=body)
    event_ids: list[int] = []
    remaining = count

    async def create_some(conn: HttpConnection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status, answer = await conn.request(request)
            if status != 201:
                raise PreparationFailed(_explain(status, answer))
            event_ids.append(int(json.loads(answer)["eventId"]))

    connections = [
        await open_connection(host, port) for _ in range(min(EVENT_CONNECTIONS, max(count, 1)))
    ]
    try:
        await asyncio.gather(*(create_some(conn) for conn in connections))
    finally:
        for conn in connections:
            conn.close()
    return sorted(event_ids)


def _explain(status: int, answer: bytes) -> str:
    text = answer.decode("utf-8", "replace")[:300]
    hint = ""
    if status == 401:
        hint = (
            "\nThe server refused a token the bench minted: run the bench with the server's "
            "settings (the same JWT_SECRET and DATABASE_URL, from the environment or .env)."
        )
    elif status == 429:
        hint = "\nThe server is rate limiting: start it with RATE_LIMIT_ENABLED=false."
    return f"POST /initialize answered {status}: {text}{hint}"


async def prepare_plan(
    settings: Settings,
    scenario: Scenario,
    options: dict[str, Any],
    host: str,
    port: int,
    host_header: str,
) -> Plan:
    """Users in bulk, their tokens, the scenario's events: all a load needs.

    Adds what it made to `options` (for the report): the event ids.
    """
    run_id = secrets.token_hex(3)
    prefix = f"bench-{run_id}-"
    count = options["users"] + 1  # the first one owns the events
    began = time.perf_counter()
    ids = await create_users(settings.database_url, count, prefix=prefix)
    tokens = mint_tokens(settings, [(uid, bulk_username(prefix, i)) for i, uid in enumerate(ids)])
    made_users = time.perf_counter()
    print(
        f"prepare: {count:,} users inserted and their tokens minted in "
        f"{made_users - began:.1f} s (run {run_id})",
        flush=True,
    )
    party_sizes: list[int] = options.get("party_sizes", [1])
    fields: dict[str, Any] = {}
    if scenario is Scenario.OPENING:  # not on sale until the load's first request sets the moment
        fields["sales_start"] = OPENING_PLACEHOLDER
    if max(party_sizes) > 1:  # single tickets send exactly the body they always did
        fields["max_per_user"] = max(party_sizes)
    event_ids = await create_events(
        host,
        port,
        host_header=host_header,
        token=tokens[0],
        count=options["events"],
        tickets=options["tickets"],
        name=f"bench {scenario.value} {run_id}",
        fields=fields,
    )
    print(
        f"prepare: {len(event_ids):,} event(s) of {options['tickets']:,} tickets created via "
        f"POST /initialize in {time.perf_counter() - made_users:.1f} s",
        flush=True,
    )
    options["event_ids"] = event_ids if len(event_ids) <= 20 else [event_ids[0], event_ids[-1]]
    seed = int(run_id, 16)
    # Each user's party drawn once, from the run's seed: the same run id draws the same parties.
    draw = random.Random(seed)  # noqa: S311 - a load mix, not a secret
    quantities = [draw.choice(party_sizes) for _ in ids[1:]]
    return Plan(
        scenario=scenario,
        host_header=host_header,
        users=[
            BenchUser(uid, token, quantity)
            for uid, token, quantity in zip(ids[1:], tokens[1:], quantities, strict=True)
        ],
        event_ids=event_ids,
        duration=options["duration"],
        cancel_rate=options.get("cancel_rate", 0.0),
        leave_rate=options.get("leave_rate", 0.0),
        seed=seed,
        owner_token=tokens[0] if scenario is Scenario.OPENING else "",
    )


async def describe_database(url: str) -> str:
    """'MariaDB 10.11.6', 'SQLite 3.40.1', for the report."""
    backend = make_url(url).get_backend_name()
    async with connect(url) as engine, engine.connect() as conn:
        if backend == "sqlite":
            version = (await conn.execute(text("SELECT sqlite_version()"))).scalar_one()
            return f"SQLite {version}"
        version = str((await conn.execute(text("SELECT VERSION()"))).scalar_one())
    number, _, flavour = version.partition("-")
    return f"{'MariaDB' if 'mariadb' in flavour.lower() else 'MySQL'} {number}"
