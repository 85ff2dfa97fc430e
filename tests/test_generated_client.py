"""A Python client generated from openapi.json drives the whole flow against a running server.

This is what a user does with the README's commands: generate `booking_service_client` with
openapi-python-client, then call `book_ticket.sync_detailed(...)` and friends. The generated
package is imported from a temporary folder; nothing is installed into the environment. Every
answer the clients receive is checked against the document as it arrives (tests/contract.py),
and together the flows must show every success the document lists.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.contract import Answer, Contract
from tests.support.apps import OPENAPI_FILE, OPERATION_IDS
from tests.support.databases import BACKENDS
from tests.support.servers import ServerProcess, serve, serve_fresh

PACKAGE = "booking_service_client"
GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Generate the client into a temporary folder and put that folder on sys.path."""
    root = tmp_path_factory.mktemp("generated")
    env = dict(os.environ)
    # The generator formats its output with ruff, found on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [GENERATOR, "generate", "--path", str(OPENAPI_FILE), "--meta", "none"]
    result = subprocess.run(
        [*command, "--output-path", str(root / PACKAGE)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A warning means some part of the document was not understood and left out of the client.
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(root))
    try:
        yield root / PACKAGE
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def load(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_names_read_well(client_package: Path) -> None:
    modules = {
        f"{group.name}.{module.stem}"
        for group in (client_package / "api").iterdir()
        if group.is_dir() and not group.name.startswith("_")
        for module in group.glob("*.py")
        if module.stem != "__init__"
    }
    assert {name.split(".")[1] for name in modules} == OPERATION_IDS
    assert modules == {
        "auth.register",
        "auth.login",
        "auth.close_account",
        "events.create_event",
        "events.get_event",
        "events.get_event_status",
        "events.list_events",
        "bookings.book_ticket",
        "bookings.cancel_booking",
        "bookings.list_my_bookings",
        "operations.health",
        "operations.ready",
        "operations.metrics",
        "bookings.list_my_history",
        "bookings.accept_offer",
        "bookings.decline_offer",
        "organizer.update_event",
        "organizer.close_event",
        "organizer.cancel_event",
        "organizer.list_event_bookings",
        "organizer.list_event_history",
        "organizer.check_in_ticket",
        "bookings.transfer_ticket",
    }
    models = load("models")
    assert {
        "BookingConfirmed",
        "BookingWaitlisted",
        "CancelResult",
        "ErrorResponse",
        "EventCreate",
        "EventStatus",
        "MyBookings",
        "TokenResponse",
        "UserCreate",
    } <= set(models.__all__)
    assert not [name for name in models.__all__ if any(c.isdigit() for c in name)], "no Foo1"


@pytest.fixture(scope="module", params=BACKENDS)
async def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """`booking-service serve` on a fresh database: a SQLite file, or a new MariaDB database.
    The flows share it: each signs up users and creates events of its own."""
    workdir = tmp_path_factory.mktemp(f"generated-{request.param}")
    # Rate limits would turn this quick sequence of calls into 429s; they have tests of their own.
    async with serve_fresh(request.param, workdir, RATE_LIMIT_ENABLED="false") as running:
        yield running


@pytest.fixture(scope="module")
def seen() -> dict[str, list[Answer]]:
    """Every answer the module's clients received, by backend."""
    return {}


@dataclass
class Clients:
    """Generated clients of one server. Each answer they receive is checked against the
    document as it arrives and kept; a status the document does not list raises too."""

    server: ServerProcess
    contract: Contract
    answers: list[Answer]

    def _check(self, response: httpx.Response) -> None:
        response.read()
        answer = Answer.of(response)
        self.answers.append(answer)
        self.contract.check([answer])

    def _options(self) -> dict[str, Any]:
        return {
            "base_url": self.server.base_url,
            "raise_on_unexpected_status": True,
            "httpx_args": {"event_hooks": {"response": [self._check]}},
        }

    def anonymous(self) -> Any:
        return load("client").Client(**self._options())

    def with_token(self, token: str) -> Any:
        return load("client").AuthenticatedClient(token=token, **self._options())

    def sign_up(self, username: str) -> Any:
        """Register and log in; an AuthenticatedClient of the new user."""
        models = load("models")
        register, login = load("api.auth.register"), load("api.auth.login")
        anonymous = self.anonymous()
        credentials = {"username": username, "password": "password123"}
        created = register.sync_detailed(
            client=anonymous, body=models.UserCreate.from_dict(credentials)
        )
        assert created.status_code == 201
        assert created.parsed.message == "Registration Successful"
        issued = login.sync(client=anonymous, body=models.LoginRequest.from_dict(credentials))
        assert isinstance(issued, models.TokenResponse)
        assert issued.token_type == "bearer"
        return self.with_token(issued.token)


@pytest.fixture
def clients(
    client_package: Path,
    server: ServerProcess,
    contract: Contract,
    seen: dict[str, list[Answer]],
    request: pytest.FixtureRequest,
) -> Clients:
    backend = request.node.callspec.params["server"]
    return Clients(server, contract, seen.setdefault(backend, []))


def test_whole_flow_through_the_generated_client(clients: Clients) -> None:
    models = load("models")
    register = load("api.auth.register")
    create_event, get_event_status = (
        load("api.events.create_event"),
        load("api.events.get_event_status"),
    )
    get_event, list_events = load("api.events.get_event"), load("api.events.list_events")
    book_ticket, cancel_booking, list_my_bookings = (
        load("api.bookings.book_ticket"),
        load("api.bookings.cancel_booking"),
        load("api.bookings.list_my_bookings"),
    )
    anonymous = clients.anonymous()
    alice, bob = clients.sign_up("alice"), clients.sign_up("bob")

    taken = register.sync_detailed(
        client=anonymous, body=models.UserCreate(username="alice", password="password123")
    )
    assert taken.status_code == 409
    assert isinstance(taken.parsed, models.ErrorResponse)
    assert taken.parsed.code == "username_taken"

    created = create_event.sync(
        client=alice, body=models.EventCreate(name="Concert 2025", tickets=1)
    )
    assert isinstance(created, models.EventCreated)
    event_id = created.event_id

    booked = book_ticket.sync_detailed(client=alice, body=models.BookingRequest(event_id=event_id))
    assert booked.status_code == 201
    assert isinstance(booked.parsed, models.BookingConfirmed)
    assert booked.parsed.message == "Ticket booked"

    in_line = book_ticket.sync_detailed(client=bob, body=models.BookingRequest(event_id=event_id))
    assert in_line.status_code == 202
    assert isinstance(in_line.parsed, models.BookingWaitlisted)
    assert in_line.parsed.position == 1

    twice = book_ticket.sync_detailed(client=bob, body=models.BookingRequest(event_id=event_id))
    assert twice.status_code == 409
    assert twice.parsed.code == "already_booked"

    status = get_event_status.sync(client=alice, event_id=event_id)
    assert isinstance(status, models.EventStatus)
    assert (status.available_tickets, status.total_ticket_booked, status.waiting_list_count) == (
        0,
        1,
        1,
    )

    cancelled = cancel_booking.sync(client=alice, body=models.BookingRequest(event_id=event_id))
    assert isinstance(cancelled, models.CancelResult)
    assert cancelled.outcome == models.CancelResultOutcome.REASSIGNED
    assert cancelled.message == (
        "Booking canceled, ticket assigned to another user on the waiting list"
    )

    status = get_event_status.sync(client=bob, event_id=event_id)
    assert (status.available_tickets, status.total_ticket_booked, status.waiting_list_count) == (
        0,
        1,
        0,
    )
    mine = list_my_bookings.sync(client=bob)
    assert isinstance(mine, models.MyBookings)
    [promoted] = mine.items
    assert promoted.event_id == event_id
    assert promoted.status == models.MyBookingStatus.CONFIRMED
    assert promoted.position is None
    assert isinstance(promoted.promoted_at, datetime)
    assert promoted.promoted_at.tzinfo is not None
    assert list_my_bookings.sync(client=alice).items == []

    event = get_event.sync(client=bob, event_id=event_id)
    assert isinstance(event, models.EventRead)
    assert (event.name, event.capacity, event.available_tickets) == ("Concert 2025", 1, 0)
    page = list_events.sync(client=bob, limit=10)
    assert isinstance(page, models.EventPage)
    assert page.items[0].event_id == event_id, "newest first"

    # Errors arrive parsed as the one error envelope.
    unknown = book_ticket.sync_detailed(client=bob, body=models.BookingRequest(event_id=987654))
    assert unknown.status_code == 404
    assert isinstance(unknown.parsed, models.ErrorResponse)
    assert (unknown.parsed.code, unknown.parsed.message) == ("event_not_found", "Event not found")
    assert unknown.parsed.details is None

    too_big = list_events.sync_detailed(client=bob, limit=1000)
    assert too_big.status_code == 422
    assert too_big.parsed.details[0].loc == ["query", "limit"]

    stranger = clients.with_token("not-a-token")
    refused = list_my_bookings.sync_detailed(client=stranger)
    assert refused.status_code == 401
    assert refused.parsed.code == "invalid_token"
    assert refused.headers["www-authenticate"] == "Bearer"


def test_offers_and_organizer_controls_through_the_generated_client(clients: Clients) -> None:
    models = load("models")
    create_event, update_event = load("api.events.create_event"), load("api.organizer.update_event")
    book_ticket, cancel_booking = (
        load("api.bookings.book_ticket"),
        load("api.bookings.cancel_booking"),
    )
    accept_offer, decline_offer = (
        load("api.bookings.accept_offer"),
        load("api.bookings.decline_offer"),
    )
    list_my_bookings, list_my_history = (
        load("api.bookings.list_my_bookings"),
        load("api.bookings.list_my_history"),
    )
    list_event_bookings = load("api.organizer.list_event_bookings")
    list_event_history = load("api.organizer.list_event_history")
    close_event, cancel_event = (
        load("api.organizer.close_event"),
        load("api.organizer.cancel_event"),
    )
    owner, ann, ben, cat = (clients.sign_up(name) for name in ("owner", "ann", "ben", "cat"))

    created = create_event.sync(
        client=owner,
        body=models.EventCreate(
            name="Gig", tickets=1, waitlist_mode=models.WaitlistMode.OFFER, offer_seconds=600
        ),
    )
    event = models.BookingRequest(event_id=created.event_id)
    assert isinstance(book_ticket.sync(client=ann, body=event), models.BookingConfirmed)
    for person in (ben, cat):
        assert isinstance(book_ticket.sync(client=person, body=event), models.BookingWaitlisted)
    cancelled = cancel_booking.sync(client=ann, body=event)
    assert cancelled.outcome == models.CancelResultOutcome.OFFERED
    [offer] = list_my_bookings.sync(client=ben).items
    assert offer.status == models.MyBookingStatus.OFFERED
    assert offer.offer_expires_at.tzinfo is not None

    declined = decline_offer.sync(client=ben, body=event)
    assert isinstance(declined, models.OfferDeclined)
    accepted = accept_offer.sync(client=cat, body=event)
    assert isinstance(accepted, models.BookingConfirmed)
    gone = accept_offer.sync_detailed(client=ben, body=event)
    assert (gone.status_code, gone.parsed.code) == (404, "offer_not_found")

    grown = update_event.sync(
        client=owner,
        event_id=created.event_id,
        body=models.EventUpdate(tickets=3, waitlist_mode=models.WaitlistMode.INSTANT),
    )
    assert isinstance(grown, models.EventRead)
    assert (grown.capacity, grown.available_tickets, grown.waitlist_mode) == (
        3,
        2,
        models.WaitlistMode.INSTANT,
    )
    refused = update_event.sync_detailed(
        client=ann, event_id=created.event_id, body=models.EventUpdate(tickets=1)
    )
    assert (refused.status_code, refused.parsed.code) == (403, "not_event_owner")
    page = list_event_bookings.sync(
        client=owner,
        event_id=created.event_id,
        status=models.ListEventBookingsStatus.CONFIRMED,
    )
    assert [(b.username, b.status) for b in page.items] == [("cat", "confirmed")]
    story = list_event_history.sync(client=owner, event_id=created.event_id, limit=100)
    assert story.total == 8
    mine = list_my_history.sync(client=ben)
    assert [e.action for e in reversed(mine.items)] == ["waitlisted", "offered", "declined"]

    closed = close_event.sync(client=owner, event_id=created.event_id)
    assert closed.state == "closed"
    late = book_ticket.sync_detailed(client=ann, body=event)
    assert (late.status_code, late.parsed.code) == (409, "event_closed")
    ended = cancel_event.sync(client=owner, event_id=created.event_id)
    assert isinstance(ended, models.EventCancelled)
    assert (ended.released_tickets, ended.released_offers, ended.released_places) == (1, 0, 0)

    # A party in offer mode: offered whole, accepted whole, part given back.
    party = create_event.sync(
        client=owner,
        body=models.EventCreate(
            name="Party", tickets=3, max_per_user=3, waitlist_mode=models.WaitlistMode.OFFER
        ),
    )
    whole = models.BookRequest(event_id=party.event_id, quantity=3)
    assert book_ticket.sync(client=ann, body=whole).quantity == 3
    queued = book_ticket.sync(
        client=ben, body=models.BookRequest(event_id=party.event_id, quantity=2)
    )
    assert isinstance(queued, models.BookingWaitlisted)
    assert (queued.position, queued.quantity) == (1, 2)
    given = cancel_booking.sync(
        client=ann, body=models.CancelRequest(event_id=party.event_id, quantity=2)
    )
    assert (given.outcome, given.released_tickets, given.quantity) == (
        models.CancelResultOutcome.OFFERED,
        2,
        1,
    )
    taken = accept_offer.sync(client=ben, body=models.BookingRequest(event_id=party.event_id))
    assert (taken.status, taken.quantity) == ("confirmed", 2)


def test_operations_routes_and_closing_an_account_through_the_generated_client(
    clients: Clients,
) -> None:
    models = load("models")
    health, ready = load("api.operations.health"), load("api.operations.ready")
    metrics, close_account = load("api.operations.metrics"), load("api.auth.close_account")
    list_my_bookings = load("api.bookings.list_my_bookings")
    anonymous = clients.anonymous()
    assert health.sync(client=anonymous).status == "ok"
    readiness = ready.sync(client=anonymous)
    assert (readiness.status, readiness.checks["database"]) == ("ready", "ok")
    exposition = metrics.sync_detailed(client=anonymous)
    assert exposition.status_code == 200
    assert b"# HELP " in exposition.content

    leaving = clients.sign_up("leaving")
    wrong = close_account.sync_detailed(
        client=leaving, body=models.AccountClose(password="not-the-password")
    )
    assert (wrong.status_code, wrong.parsed.code) == (403, "wrong_password")
    closed = close_account.sync_detailed(
        client=leaving, body=models.AccountClose(password="password123")
    )
    assert (closed.status_code, closed.content) == (204, b"")
    gone = list_my_bookings.sync_detailed(client=leaving)
    assert (gone.status_code, gone.parsed.code) == (401, "invalid_token")


def test_a_sale_window_a_transfer_and_a_check_in_through_the_generated_client(
    clients: Clients,
) -> None:
    models = load("models")
    create_event, get_event = load("api.events.create_event"), load("api.events.get_event")
    book_ticket, list_my_bookings = (
        load("api.bookings.book_ticket"),
        load("api.bookings.list_my_bookings"),
    )
    transfer_ticket = load("api.bookings.transfer_ticket")
    check_in_ticket = load("api.organizer.check_in_ticket")
    owner, ann, ben = (clients.sign_up(name) for name in ("seller", "giver", "taker"))

    later = create_event.sync(
        client=owner,
        body=models.EventCreate(
            name="Later", tickets=5, sales_start=datetime.now(UTC) + timedelta(hours=1)
        ),
    )
    assert get_event.sync(client=ann, event_id=later.event_id).state == "upcoming"
    early = book_ticket.sync_detailed(
        client=ann, body=models.BookingRequest(event_id=later.event_id)
    )
    assert (early.status_code, early.parsed.code) == (409, "sales_not_started")
    assert early.parsed.sales_start > datetime.now(UTC)
    assert int(early.headers["retry-after"]) > 3500

    created = create_event.sync(client=owner, body=models.EventCreate(name="Now", tickets=1))
    event = models.BookingRequest(event_id=created.event_id)
    assert isinstance(book_ticket.sync(client=ann, body=event), models.BookingConfirmed)
    [anns] = list_my_bookings.sync(client=ann).items

    moved = transfer_ticket.sync(
        client=ann,
        body=models.TransferRequest(event_id=created.event_id, to_username="taker"),
    )
    assert isinstance(moved, models.TransferResult)
    assert (moved.to_username, moved.quantity) == ("taker", 1)
    [bens] = list_my_bookings.sync(client=ben).items
    assert bens.booking_id == moved.booking_id
    assert bens.ticket_code != anns.ticket_code

    old = check_in_ticket.sync_detailed(
        client=owner,
        event_id=created.event_id,
        body=models.CheckInRequest(code=anns.ticket_code),
    )
    assert (old.status_code, old.parsed.code) == (404, "ticket_not_found")
    door = check_in_ticket.sync(
        client=owner, event_id=created.event_id, body=models.CheckInRequest(code=bens.ticket_code)
    )
    assert isinstance(door, models.CheckInResult)
    assert (door.username, door.quantity) == ("taker", 1)
    again = check_in_ticket.sync_detailed(
        client=owner, event_id=created.event_id, body=models.CheckInRequest(code=bens.ticket_code)
    )
    assert (again.status_code, again.parsed.code) == (409, "already_checked_in")
    assert again.parsed.checked_in_at == door.checked_in_at
    back = transfer_ticket.sync_detailed(
        client=ben,
        body=models.TransferRequest(event_id=created.event_id, to_username="giver"),
    )
    assert (back.status_code, back.parsed.code) == (409, "checked_in")


FLOW_TESTS = (
    test_whole_flow_through_the_generated_client,
    test_offers_and_organizer_controls_through_the_generated_client,
    test_operations_routes_and_closing_an_account_through_the_generated_client,
    test_a_sale_window_a_transfer_and_a_check_in_through_the_generated_client,
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_flows_saw_every_documented_success(
    backend: str,
    seen: dict[str, list[Answer]],
    contract: Contract,
    request: pytest.FixtureRequest,
) -> None:
    """Runs after the flows above (file order) and needs them all in the same run."""
    selected = {item.name for item in request.session.items}
    if not {f"{test.__name__}[{backend}]" for test in FLOW_TESTS} <= selected:
        pytest.skip(f"needs this module's flows on {backend} in the same run")
    if not seen.get(backend):
        pytest.skip(f"the flows did not run on {backend}")
    unseen = contract.unseen_successes(seen[backend])
    assert not unseen, (
        "documented answers the Python client never received: drive them in "
        f"tests/test_generated_client.py: {unseen}"
    )


def test_readme_example_runs(client_package: Path, tmp_path: Path) -> None:
    readme = (OPENAPI_FILE.parent / "README.md").read_text(encoding="utf-8")
    [example] = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        if f"from {PACKAGE}" in block
    ]
    with serve(tmp_path, RATE_LIMIT_ENABLED="false") as server:
        result = subprocess.run(
            [sys.executable, "-c", example.replace("http://127.0.0.1:8000", server.base_url)],
            env={**os.environ, "PYTHONPATH": str(client_package.parent)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("booked 1\n"), result.stdout
