"""Party bookings (issue 16) under storms, over real sockets against `booking-service serve`
(two workers on MariaDB; SQLite with one and two).

Parties of 1 to 6 book, give back all or some of their tickets, leave or shrink their place
in line, answer or let lapse offers of their whole party, while the owner changes the number
of tickets, all at once. Afterwards: no 5xx, the party invariants straight from the database
(tickets never oversold, the line rule, promotions of whole parties in line order), every
acknowledged answer matched to its row and every row to an answer, /status and /me/bookings
agreeing with the rows.

Skipped, with the reason, exactly while POST /book takes no quantity (tests/party_api.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from booking_service.bench.invariants import InvariantReport, check_invariants
from booking_service.db import connect
from booking_service.models import Booking, BookingStatus
from tests.concurrency.conftest import RunningServer
from tests.concurrency.storm import http_client, http_clients
from tests.party_api import requires_party_api
from tests.party_model import PartyModel, mismatches
from tests.support.api import ApiUser, TokenFactory, api_users, my_bookings
from tests.support.checks import OfferAnswer, check_offer_answers
from tests.support.databases import Database
from tests.support.timing import eventually

pytestmark = [pytest.mark.slow, requires_party_api]

MAX_PER_USER = 6
CAPACITY_REFUSALS = {"capacity_below_held", "capacity_below_party"}


@dataclass(frozen=True)
class PartyCall:
    role: str
    user: ApiUser
    method: str
    path: str
    body: dict[str, Any] | None = None

    @property
    def quantity(self) -> int | None:
        value = (self.body or {}).get("quantity")
        return value if isinstance(value, int) else None


@dataclass(frozen=True)
class PartyAnswer:
    call: PartyCall
    status: int
    body: Any

    def get(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


def of(answers: Sequence[PartyAnswer], role: str) -> list[PartyAnswer]:
    return [a for a in answers if a.call.role == role]


def statuses(answers: Sequence[PartyAnswer], role: str) -> Counter[int]:
    return Counter(a.status for a in of(answers, role))


async def fire(base_url: str, calls: Sequence[PartyCall], *, seed: int) -> list[PartyAnswer]:
    """Send every call at once, each from its own client, in a shuffled (seeded) order; the
    answers come back in the order of `calls`."""
    order = list(range(len(calls)))
    random.Random(seed).shuffle(order)

    async def send(client: httpx.AsyncClient, call: PartyCall) -> PartyAnswer:
        response = await client.request(
            call.method, call.path, json=call.body, headers=call.user.headers
        )
        return PartyAnswer(
            call, response.status_code, response.json() if response.content else None
        )

    async with http_clients(base_url, len(calls)) as clients:
        tasks = {i: asyncio.create_task(send(clients[i], calls[i])) for i in order}
        await asyncio.gather(*tasks.values())
    return [tasks[i].result() for i in range(len(calls))]


def assert_no_server_errors(answers: Sequence[PartyAnswer]) -> None:
    errors = [(a.call.path, a.status, a.body) for a in answers if a.status >= 500]
    assert not errors, f"{len(errors)} answers were 5xx: {errors[:5]}"


async def party_rows(url: str, event_id: int) -> dict[int, Any]:
    """The event's booking rows by id, read by column name (quantity among them)."""
    async with connect(url) as engine, engine.connect() as conn:
        rows = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
    return {row.id: row for row in rows}


def book_call(role: str, user: ApiUser, event_id: int, quantity: int) -> PartyCall:
    return PartyCall(role, user, "POST", "/book", {"eventId": event_id, "quantity": quantity})


def cancel_call(role: str, user: ApiUser, event_id: int, quantity: int | None) -> PartyCall:
    body: dict[str, Any] = {"eventId": event_id}
    if quantity is not None:
        body["quantity"] = quantity
    return PartyCall(role, user, "POST", "/cancel", body)


async def new_party_event(
    server: RunningServer, owner: ApiUser, tickets: int, **fields: Any
) -> int:
    async with http_client(server.base_url) as client:
        response = await client.post(
            "/initialize",
            json={
                "name": "Party storm",
                "tickets": tickets,
                "max_per_user": MAX_PER_USER,
                **fields,
            },
            headers=owner.headers,
        )
    assert response.status_code == 201, response.text
    event_id: int = response.json()["eventId"]
    return event_id


async def book_in_turn(
    server: RunningServer,
    model: PartyModel,
    event_id: int,
    parties: Sequence[tuple[ApiUser, int]],
) -> dict[int, tuple[int, int]]:
    """Book each party one after the other, each answer checked against the model (no
    concurrency yet, so it is exact); returns {user id: (booking id, status code)}."""
    booked: dict[int, tuple[int, int]] = {}
    async with http_client(server.base_url) as client:
        for user, quantity in parties:
            model.register(str(user.id))
            response = await client.post(
                "/book", json={"eventId": event_id, "quantity": quantity}, headers=user.headers
            )
            given = response.json().get("bookingId")
            expected = model.book(str(user.id), event_id, quantity, booking_id=given)
            assert not mismatches(expected, response.status_code, response.json()), response.text
            booked[user.id] = (given, response.status_code)
    return booked


def assert_consistent_read(answer: PartyAnswer) -> None:
    """A /status read in the middle of a storm is one committed state: the line rule holds."""
    assert answer.status == 200, answer
    s = answer.body
    assert s["available_tickets"] >= 0, s
    assert s["offered_tickets"] >= 0, s
    assert s["waiting_list_tickets"] >= s["waiting_list_count"], s
    if s["waiting_list_count"]:
        assert s["first_in_line_needs"] >= 1, f"the first party fits, yet waits: {s}"
    else:
        assert (s["first_in_line_needs"], s["waiting_list_tickets"]) == (0, 0), s


async def assert_status_is_the_database(
    server: RunningServer,
    user: ApiUser,
    event_id: int,
    rows: dict[int, Any],
    report: InvariantReport,
) -> None:
    async with http_client(server.base_url) as client:
        response = await client.get(f"/status/{event_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    line = sorted(
        (r for r in rows.values() if r.status == BookingStatus.WAITLISTED), key=lambda r: r.line_seq
    )
    needs = line[0].quantity - report.available if line else 0
    status = response.json()
    assert {
        "available_tickets": status["available_tickets"],
        "total_ticket_booked": status["total_ticket_booked"],
        "offered_tickets": status["offered_tickets"],
        "waiting_list_count": status["waiting_list_count"],
        "waiting_list_tickets": status["waiting_list_tickets"],
        "first_in_line_needs": status["first_in_line_needs"],
    } == {
        "available_tickets": report.available,
        "total_ticket_booked": report.confirmed,
        "offered_tickets": report.offered,
        "waiting_list_count": report.waiting,
        "waiting_list_tickets": report.waiting_tickets,
        "first_in_line_needs": needs,
    }


async def assert_bookings_read_back(
    server: RunningServer, users: Sequence[ApiUser], event_id: int, rows: dict[int, Any]
) -> None:
    """GET /me/bookings of everyone: their live claim, its quantity, places 1..n in line."""
    live = {r.user_id: r for r in rows.values() if r.active == 1}
    line = sorted(
        (r for r in live.values() if r.status == BookingStatus.WAITLISTED), key=lambda r: r.line_seq
    )
    place = {r.id: index + 1 for index, r in enumerate(line)}

    async def ask(client: httpx.AsyncClient, user: ApiUser) -> None:
        items = [i for i in await my_bookings(client, user.headers) if i["eventId"] == event_id]
        row = live.get(user.id)
        if row is None:
            assert items == [], (user.id, items)
            return
        [item] = items
        assert (item["bookingId"], item["status"], item["quantity"], item["position"]) == (
            row.id,
            row.status,
            row.quantity,
            place.get(row.id),
        ), (user.id, item)

    async with http_clients(server.base_url, len(users)) as clients:
        await asyncio.gather(*map(ask, clients, users))


async def test_parties_book_give_back_and_leave_all_at_once(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    rng = random.Random(16)
    tickets = 60
    people = await api_users(storm_db.url, server_tokens, 1 + 40 + 25 + 60 + 5 + 15, "party")
    owner, holders, waiters = people[0], people[1:41], people[41:66]
    newcomers, too_large, strangers = people[66:126], people[126:131], people[131:]
    event_id = await new_party_event(server, owner, tickets)
    model = PartyModel()
    model.register(str(owner.id))
    model.create_event(
        str(owner.id), "Party storm", tickets, max_per_user=MAX_PER_USER, event_id=event_id
    )

    # The scene, booked one by one: tickets held by parties of 1-6, then a line of parties.
    sizes = {u.id: rng.randint(1, MAX_PER_USER) for u in people}
    setup = await book_in_turn(server, model, event_id, [(u, sizes[u.id]) for u in holders])
    setup |= await book_in_turn(server, model, event_id, [(u, sizes[u.id]) for u in waiters])
    before = await party_rows(storm_db.url, event_id)
    confirmed = [u for u in holders + waiters if before[setup[u.id][0]].status == "confirmed"]
    waiting = [u for u in holders + waiters if before[setup[u.id][0]].status == "waitlisted"]
    assert waiting, "the scene has a line"

    def part(user: ApiUser) -> tuple[str, int | None] | None:
        held, roll = sizes[user.id], rng.random()
        if roll < 0.35:
            return "whole", None
        if roll < 0.7 and held > 1:
            return "partial", rng.randint(1, held - 1)
        return None

    calls: list[PartyCall] = []
    plans: dict[int, tuple[str, int | None]] = {}
    for user in confirmed + waiting:
        plan = part(user)
        if plan is None:
            calls.append(book_call("stayer", user, event_id, 1))  # a second claim: 409
        else:
            plans[user.id] = plan
            role = ("holder-" if user in confirmed else "waiter-") + plan[0]
            calls.append(cancel_call(role, user, event_id, plan[1]))
    calls += [book_call("newcomer", u, event_id, sizes[u.id]) for u in newcomers]
    calls += [book_call("too-large", u, event_id, MAX_PER_USER + 1) for u in too_large]
    calls += [cancel_call("stranger", u, event_id, None) for u in strangers]
    calls += [PartyCall("reader", u, "GET", f"/status/{event_id}") for u in strangers]
    calls += [
        PartyCall(
            "organizer",
            owner,
            "PATCH",
            f"/events/{event_id}",
            {"tickets": rng.randint(tickets - 20, tickets + 30)},
        )
        for _ in range(8)
    ]

    answers = await fire(server.base_url, calls, seed=16)
    assert_no_server_errors(answers)
    print(
        f"\n[party storm] {len(calls)} calls on {server.name}: {Counter(a.status for a in answers)}"
    )

    for role in ("holder-whole", "holder-partial", "waiter-whole", "waiter-partial"):
        assert set(statuses(answers, role)) <= {200}, (role, of(answers, role)[:3])
    assert {a.get("outcome") for a in of(answers, "holder-whole")} <= {"reassigned", "released"}
    for answer in of(answers, "holder-partial") + of(answers, "waiter-partial"):
        assert answer.get("quantity") == sizes[answer.call.user.id] - (answer.call.quantity or 0)
    assert set(statuses(answers, "stayer")) <= {409}
    assert {a.get("code") for a in of(answers, "stayer")} <= {"already_booked"}
    assert set(statuses(answers, "newcomer")) <= {201, 202}
    assert set(statuses(answers, "too-large")) <= {422}
    assert set(statuses(answers, "stranger")) <= {404}
    for answer in of(answers, "reader"):
        assert_consistent_read(answer)
    for answer in of(answers, "organizer"):
        assert answer.status == 200 or (
            answer.status == 409 and answer.get("code") in CAPACITY_REFUSALS
        ), answer

    rows = await party_rows(storm_db.url, event_id)
    acknowledged = {a.get("bookingId") for a in of(answers, "newcomer")}
    assert set(rows) == set(before) | acknowledged, "a row nobody was told about, or one missing"
    for answer in of(answers, "newcomer"):
        row = rows[answer.get("bookingId")]
        assert (row.user_id, row.event_id, row.quantity) == (
            answer.call.user.id,
            event_id,
            answer.call.quantity,
        )
        if answer.status == 201:
            assert answer.get("quantity") == row.quantity
            assert row.line_seq is None
            assert row.promoted_at is None
        else:
            assert row.line_seq is not None
        assert row.status in ("confirmed", "waitlisted")
    for user in confirmed + waiting:
        row = rows[setup[user.id][0]]
        plan = plans.get(user.id)
        if plan is None:
            assert (row.quantity, row.active) == (sizes[user.id], 1)
        elif plan[0] == "partial":
            assert (row.quantity, row.active) == (sizes[user.id] - (plan[1] or 0), 1)
        elif user in confirmed:
            assert row.status == "cancelled"
        else:  # left the line, or was promoted first and gave the tickets back
            assert row.status == "left" or (row.status == "cancelled" and row.promoted_at)

    report = (await check_invariants(storm_db.url, [event_id]))[event_id]
    await assert_status_is_the_database(server, owner, event_id, rows, report)
    await assert_bookings_read_back(server, people, event_id, rows)

    # Drain: every holder gives everything back at once. The line must be served strictly in
    # order, whole parties: exactly the longest first part of it that fits in the event.
    holding = [r for r in rows.values() if r.status == "confirmed"]
    line = sorted((r for r in rows.values() if r.status == "waitlisted"), key=lambda r: r.line_seq)
    by_id = {u.id: u for u in people}
    fits, room = [], report.capacity
    for entry in line:
        if entry.quantity > room:
            break
        fits.append(entry.id)
        room -= entry.quantity
    drain = await fire(
        server.base_url,
        [cancel_call("drain", by_id[r.user_id], event_id, None) for r in holding],
        seed=17,
    )
    assert_no_server_errors(drain)
    assert statuses(drain, "drain") == Counter({200: len(holding)})
    after = await party_rows(storm_db.url, event_id)
    served = [r.id for r in line if after[r.id].status == "confirmed"]
    assert served == fits, "the line was not served in order, whole parties first come"
    report = (await check_invariants(storm_db.url, [event_id]))[event_id]
    assert (report.available, report.confirmed) == (room, report.capacity - room)
    await assert_status_is_the_database(server, owner, event_id, after, report)
    await assert_bookings_read_back(server, people, event_id, after)
    assert server.new_log().count("Traceback") == 0


@dataclass
class OfferStorm:
    rng: random.Random
    base_url: str
    event_id: int
    ends_at: float
    answers: list[PartyAnswer] = field(default_factory=list)
    offer_answers: list[OfferAnswer] = field(default_factory=list)

    async def call(self, client: httpx.AsyncClient, call: PartyCall) -> PartyAnswer:
        response = await client.request(
            call.method, call.path, json=call.body, headers=call.user.headers
        )
        answer = PartyAnswer(
            call, response.status_code, response.json() if response.content else None
        )
        self.answers.append(answer)
        return answer

    async def person(self, client: httpx.AsyncClient, user: ApiUser, quantity: int) -> None:
        """Joins at some moment, then looks at their claim now and then and acts on it."""
        await asyncio.sleep(self.rng.uniform(0, 1.5))
        await self.call(client, book_call("book", user, self.event_id, quantity))
        while time.monotonic() < self.ends_at:
            items = [
                i for i in await my_bookings(client, user.headers) if i["eventId"] == self.event_id
            ]
            if not items:
                return
            await self.act(client, user, items[0])
            await asyncio.sleep(self.rng.uniform(0.1, 0.3))

    async def act(self, client: httpx.AsyncClient, user: ApiUser, item: dict[str, Any]) -> None:
        roll, held = self.rng.random(), item["quantity"]
        if item["status"] == "offered":
            if roll < 0.3:
                return  # let it lapse
            await asyncio.sleep(self.rng.uniform(0, 2.2))  # most in time, some late
            path = "/offers/accept" if roll < 0.8 else "/offers/decline"
            answer = await self.call(
                client, PartyCall("offer", user, "POST", path, {"eventId": self.event_id})
            )
            self.offer_answers.append(OfferAnswer(user.id, self.event_id, path, answer.status))
            if path == "/offers/accept" and answer.status == 200 and "quantity" in answer.body:
                assert answer.body["quantity"] == held, answer
        elif item["status"] == "confirmed" and roll < 0.08 and held > 1:
            # Only a confirmed booking: a place in line may turn into an offer meanwhile,
            # and part of an offer cannot be given back.
            k = self.rng.randint(1, held - 1)
            answer = await self.call(client, cancel_call("partial", user, self.event_id, k))
            assert (answer.status, answer.get("quantity")) == (200, held - k), answer
        elif roll < 0.12:
            await self.call(client, cancel_call("whole", user, self.event_id, None))

    async def organizer(self, client: httpx.AsyncClient, owner: ApiUser) -> None:
        while time.monotonic() < self.ends_at:
            await asyncio.sleep(self.rng.uniform(0.5, 1.0))
            tickets = self.rng.randint(8, 30)
            body = {"tickets": tickets}
            await self.call(
                client, PartyCall("organizer", owner, "PATCH", f"/events/{self.event_id}", body)
            )


async def lingering_lapsed_offers(url: str, event_id: int, grace: timedelta) -> int:
    async with connect(url) as engine, engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(Booking)
            .where(
                Booking.event_id == event_id,
                Booking.status == BookingStatus.OFFERED,
                Booking.offer_expires_at < datetime.now(UTC) - grace,
            )
        )
    return int(count or 0)


async def test_party_offers_answered_declined_and_lapsing_while_tickets_change(
    server: RunningServer, storm_db: Database, server_tokens: TokenFactory
) -> None:
    rng = random.Random(61)
    people = await api_users(storm_db.url, server_tokens, 41, "offer")
    owner, crowd = people[0], people[1:]
    event_id = await new_party_event(server, owner, 12, waitlist_mode="offer", offer_seconds=2)
    storm = OfferStorm(rng, server.base_url, event_id, time.monotonic() + 8.0)
    sizes = {u.id: rng.randint(1, MAX_PER_USER) for u in crowd}
    async with http_clients(server.base_url, len(crowd) + 1) as clients:
        await asyncio.gather(
            storm.organizer(clients[-1], owner),
            *(storm.person(c, u, sizes[u.id]) for c, u in zip(clients, crowd, strict=False)),
        )
    assert_no_server_errors(storm.answers)
    by_role = Counter((a.call.role, a.status) for a in storm.answers)
    print(f"\n[party offers] on {server.name}: {dict(by_role)}")
    assert {a.status for a in of(storm.answers, "book")} <= {201, 202}
    # A whole cancel finds nothing only when the offer it gave up had lapsed and gone meanwhile.
    assert {a.status for a in of(storm.answers, "whole")} <= {200, 404}
    for answer in of(storm.answers, "organizer"):
        assert answer.status == 200 or (
            answer.status == 409 and answer.get("code") in CAPACITY_REFUSALS
        ), answer

    # Every worker's sweep (every 5 s by default) expires what lapsed and passes it on.
    async def no_offer_lingers() -> bool:
        return await lingering_lapsed_offers(storm_db.url, event_id, timedelta(seconds=7)) == 0

    await eventually(no_offer_lingers, timeout=30, what="lapsed party offers to be swept")
    report = (await check_invariants(storm_db.url, [event_id]))[event_id]
    outcomes = await check_offer_answers(storm_db.url, storm.offer_answers)
    assert sum(outcomes.values()) > 0, "no offer was ever made"
    rows = await party_rows(storm_db.url, event_id)
    booked = {a.get("bookingId") for a in of(storm.answers, "book")}
    assert set(rows) == booked, "a row nobody was told about, or one missing"
    await assert_status_is_the_database(server, owner, event_id, rows, report)
    await assert_bookings_read_back(server, people, event_id, rows)
    assert server.new_log().count("Traceback") == 0
