"""Random register/create/book/cancel sequences against a small in-memory model of the rules.

Hypothesis drives the API one request at a time and compares every answer (status, message,
error code, place in line) with what the model predicts, and /status of the event each step
touched; /me/bookings and the database invariants are compared as the sequence goes.

The state machine is synchronous while the app is async, and pytest-asyncio owns the main
thread's event loop: so the machine runs in a worker thread with an event loop, an app and an
engine of its own, and calls the app through httpx's ASGITransport on that loop.

A passing run takes about 12 s per backend. A failing one takes longer (up to Hypothesis's
five-minute shrinking limit) because it replays shorter sequences to report a minimal one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)

from booking_service.app_state import app_state
from booking_service.bench.invariants import check_invariants
from tests.support.databases import Database, wipe_tables
from tests.support.machines import run_machine

T = TypeVar("T")

PASSWORD = "model-pw-123"
# Case variants of one name are one user: registering "Alice" after "alice" is a 409.
USERNAMES = ["alice", "Alice", "bob", "carol", "dave", "erin", "frank"]
EVENT_NAMES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
)

MAX_USERS = 8
MAX_EVENTS = 2  # few events, so lines grow long enough to move

MACHINE_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# The model: what the rules say should happen, with no database and no concurrency.


@dataclass
class Claim:
    booking_id: int
    order: int  # creation order: GET /me/bookings lists newest first
    confirmed: bool
    promoted: bool = False


@dataclass
class ModelEvent:
    name: str
    capacity: int
    holders: set[str] = field(default_factory=set)
    line: list[str] = field(default_factory=list)  # first come, first served

    def status(self) -> dict[str, Any]:
        return {
            "event_name": self.name,
            "available_tickets": self.capacity - len(self.holders),
            "total_ticket_booked": len(self.holders),
            "waiting_list_count": len(self.line),
            # One ticket each: the line wants one per entry, and its first lacks the one.
            "waiting_list_tickets": len(self.line),
            "first_in_line_needs": 1 if self.line else 0,
            "offered_tickets": 0,  # instant mode: freed tickets are booked, never offered
            "state": "open",
            "sales_start": None,
            "sales_end": None,
            "checked_in_tickets": 0,
        }


@dataclass
class Model:
    usernames: set[str] = field(default_factory=set)
    events: dict[int, ModelEvent] = field(default_factory=dict)
    claims: dict[tuple[str, int], Claim] = field(default_factory=dict)
    created: int = 0

    def claim(self, user: str, event_id: int, booking_id: int, *, confirmed: bool) -> None:
        self.created += 1
        self.claims[user, event_id] = Claim(booking_id, self.created, confirmed)

    def my_bookings(self, user: str) -> list[tuple[int, int, str, int | None, bool]]:
        """(bookingId, eventId, status, position, promoted) newest first."""
        mine = sorted(
            ((key[1], c) for key, c in self.claims.items() if key[0] == user),
            key=lambda item: -item[1].order,
        )
        result = []
        for event_id, claim in mine:
            line = self.events[event_id].line
            position = None if claim.confirmed else line.index(user) + 1
            status = "confirmed" if claim.confirmed else "waitlisted"
            result.append((claim.booking_id, event_id, status, position, claim.promoted))
        return result


@dataclass(frozen=True)
class User:
    key: str  # lower-case username
    headers: dict[str, str]


class BookingMachine(RuleBasedStateMachine):
    # Bound by run_model_check() before the machine runs, in the worker thread.
    loop: ClassVar[asyncio.AbstractEventLoop]
    app: ClassVar[FastAPI]
    client: ClassVar[httpx.AsyncClient]
    database_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        # Picked by index (shrinks towards the first): every rule can run from the first step,
        # where bundles would leave book/cancel waiting for a register and a create first.
        self.users: list[User] = []
        self.event_ids: list[int] = []
        self.run(wipe_tables(self.database_url))
        app_state(self.app).user_cache.clear()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def post(self, path: str, body: dict[str, Any], user: User | None = None) -> httpx.Response:
        headers = user.headers if user else {}
        return self.run(self.client.post(path, json=body, headers=headers))

    def get(self, path: str, user: User) -> httpx.Response:
        return self.run(self.client.get(path, headers=user.headers))

    def user(self, pick: int) -> User:
        return self.users[pick % len(self.users)]

    def event(self, pick: int) -> int:
        return self.event_ids[pick % len(self.event_ids)]

    # Users and events.

    def _register(self, username: str) -> None:
        key = username.lower()
        response = self.post("/register", {"username": username, "password": PASSWORD})
        if key in self.model.usernames:
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "username_taken"
            return
        assert response.status_code == 201, response.text
        assert response.json() == {"message": "Registration Successful"}
        self.model.usernames.add(key)
        login = self.post("/login", {"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.users.append(User(key, {"Authorization": f"Bearer {login.json()['token']}"}))

    def _create_event(self, owner: User, name: str, tickets: int) -> None:
        response = self.post("/initialize", {"name": name, "tickets": tickets}, owner)
        if not name.strip():
            assert response.status_code == 422, response.text
            return
        assert response.status_code == 201, response.text
        event_id: int = response.json()["eventId"]
        assert response.json() == {"message": "Event Created", "eventId": event_id}
        assert event_id not in self.model.events
        self.model.events[event_id] = ModelEvent(name.strip(), tickets)
        self.event_ids.append(event_id)
        self.check_status(event_id)

    @initialize(tickets=st.integers(1, 2))
    def start(self, tickets: int) -> None:
        """Every sequence starts from a sold-out event with a line, checked like any step."""
        for username in ("owner", "first", "second", "third", "fourth"):
            self._register(username)
        self._create_event(self.users[0], "Opening night", tickets)
        for user in self.users:
            self._book(user, self.event_ids[0])

    @precondition(lambda self: len(self.users) < MAX_USERS)
    @rule(username=st.sampled_from(USERNAMES))
    def register(self, username: str) -> None:
        self._register(username)

    @precondition(lambda self: len(self.event_ids) < MAX_EVENTS)
    @rule(owner=st.integers(0, 9), name=EVENT_NAMES, tickets=st.integers(1, 3))
    def create_event(self, owner: int, name: str, tickets: int) -> None:
        self._create_event(self.user(owner), name, tickets)

    # Booking and cancelling.

    @rule(who=st.lists(st.integers(0, 9), min_size=1, max_size=4), which=st.integers(0, 9))
    def book(self, who: list[int], which: int) -> None:
        """A few people book the same event, one after the other (so lines grow)."""
        for pick in who:
            self._book(self.user(pick), self.event(which))

    def _book(self, user: User, event_id: int) -> None:
        response = self.post("/book", {"eventId": event_id}, user)
        event = self.model.events[event_id]
        body = response.json()
        if (user.key, event_id) in self.model.claims:
            assert response.status_code == 409, response.text
            assert body["code"] == "already_booked"
        elif len(event.holders) < event.capacity:
            assert not event.line, "model: a free ticket while people wait"
            assert response.status_code == 201, response.text
            assert body == {
                "message": "Ticket booked",
                "eventId": event_id,
                "bookingId": body["bookingId"],
                "status": "confirmed",
                "quantity": 1,
            }
            event.holders.add(user.key)
            self.model.claim(user.key, event_id, body["bookingId"], confirmed=True)
        else:
            event.line.append(user.key)
            assert response.status_code == 202, response.text
            assert body == {
                "message": "No tickets available, you are added to waiting list",
                "eventId": event_id,
                "bookingId": body["bookingId"],
                "status": "waitlisted",
                "position": len(event.line),
                "quantity": 1,
            }
            self.model.claim(user.key, event_id, body["bookingId"], confirmed=False)
        self.check_status(event_id)

    @rule(who=st.integers(0, 9), which=st.integers(0, 9))
    def cancel(self, who: int, which: int) -> None:
        """Anyone cancels anything: often nothing to cancel, or someone else's event."""
        self._cancel(self.user(who), self.event(which))

    @precondition(lambda self: bool(self.model.claims))
    @rule(pick=st.integers(0, 99))
    def cancel_a_claim(self, pick: int) -> None:
        """Someone who holds a ticket or a place gives it up."""
        key, event_id = sorted(self.model.claims)[pick % len(self.model.claims)]
        user = next(u for u in self.users if u.key == key)
        self._cancel(user, event_id)

    def _cancel(self, user: User, event_id: int) -> None:
        response = self.post("/cancel", {"eventId": event_id}, user)
        event = self.model.events[event_id]
        claim = self.model.claims.pop((user.key, event_id), None)
        if claim is None:
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "booking_not_found"
            self.check_status(event_id)
            return
        assert response.status_code == 200, response.text
        if not claim.confirmed:
            event.line.remove(user.key)
            message, outcome = "You left the waiting list", "left_waiting_list"
        elif event.line:
            event.holders.remove(user.key)
            first = event.line.pop(0)
            event.holders.add(first)
            promoted = self.model.claims[first, event_id]
            promoted.confirmed = promoted.promoted = True
            message = "Booking canceled, ticket assigned to another user on the waiting list"
            outcome = "reassigned"
        else:
            event.holders.remove(user.key)
            message = "Booking canceled, ticket now available to other users"
            outcome = "released"
        assert response.json() == {
            "message": message,
            "eventId": event_id,
            "outcome": outcome,
            "released_tickets": 1 if claim.confirmed else 0,
            "quantity": 0,
        }
        self.check_status(event_id)

    @rule(who=st.integers(0, 9), cancelling=st.booleans())
    def unknown_event(self, who: int, cancelling: bool) -> None:
        user, event_id = self.user(who), max(self.event_ids) + 1
        response = self.post("/cancel" if cancelling else "/book", {"eventId": event_id}, user)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "event_not_found"
        assert self.get(f"/status/{event_id}", user).status_code == 404

    # Reading back.

    @rule(who=st.integers(0, 9))
    def my_bookings(self, who: int) -> None:
        user = self.user(who)
        response = self.get("/me/bookings", user)
        assert response.status_code == 200, response.text
        seen = [
            (i["bookingId"], i["eventId"], i["status"], i["position"], i["promoted_at"] is not None)
            for i in response.json()["items"]
        ]
        assert seen == self.model.my_bookings(user.key)
        names = {i["eventId"]: i["event_name"] for i in response.json()["items"]}
        assert names == {e: self.model.events[e].name for e in names}

    def check_status(self, event_id: int) -> None:
        """GET /status of the event a step touched (a step touches one event at most)."""
        response = self.get(f"/status/{event_id}", self.users[0])
        assert response.status_code == 200, response.text
        assert response.json() == self.model.events[event_id].status(), f"event {event_id}"

    def teardown(self) -> None:
        if sys.exc_info()[0] is not None:
            # A step failed and the model may be half-updated: report that failure alone.
            return
        for event_id in self.model.events:
            self.check_status(event_id)
        if self.model.events:
            self.run(check_invariants(self.database_url, list(self.model.events)))
        for user in self.users:  # everyone's tickets and places, as the sequence left them
            self.my_bookings(self.users.index(user))


def run_model_check(database_url: str) -> None:
    run_machine(BookingMachine, database_url, MACHINE_SETTINGS)


async def test_booking_rules_match_the_model(database: Database) -> None:
    await asyncio.to_thread(run_model_check, database.url)
