"""A pure in-memory model of party bookings (issue 16): what the API should answer, step by
step, with no database, no concurrency and a clock that moves only when told.

Used by tests/test_party_model.py (the rules themselves) and tests/test_party_model_based.py
(the real service driven side by side with it). Each public method is one request and returns
the `Answer` the API should give; the model changes only when the request succeeds.

Where the design leaves a field of an answer open, the `Answer` says so (`unchecked`), so the
comparison checks everything that is fixed and nothing that is not.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The original service's messages, word for word (booking_service.schemas.common.Message);
# spelled out here so that the model states the contract rather than importing it.
BOOKED = "Ticket booked"
WAITLISTED = "No tickets available, you are added to waiting list"
CANCELLED_REASSIGNED = "Booking canceled, ticket assigned to another user on the waiting list"
CANCELLED_RELEASED = "Booking canceled, ticket now available to other users"
CANCELLED_OFFERED = "Booking canceled, ticket offered to the next user on the waiting list"
LEFT_LINE = "You left the waiting list"
OFFER_DECLINED = "Offer declined"
EVENT_CREATED = "Event Created"
EVENT_CANCELLED = "Event cancelled"
VALIDATION_FAILED = "Request validation failed"

DEFAULT_MAX_PER_USER_LIMIT = 10  # the MAX_PER_USER_LIMIT setting's default
DEFAULT_OFFER_SECONDS = 900


class Mode(enum.StrEnum):
    INSTANT = "instant"
    OFFER = "offer"


class SaleState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Status(enum.StrEnum):
    CONFIRMED = "confirmed"
    OFFERED = "offered"
    WAITLISTED = "waitlisted"


class Ended(enum.StrEnum):
    CANCELLED = "cancelled"
    LEFT = "left"
    DECLINED = "declined"
    EXPIRED = "expired"
    EVENT_CANCELLED = "event_cancelled"


@dataclass(frozen=True)
class Answer:
    """What the API should answer.

    `body`: fields compared exactly. `maybe`: fields compared only where the answer carries
    them (the design names the value but not whether the answer has the field). `unchecked`:
    fields the design leaves open, allowed with any value. `partial`: other fields may appear
    (an event read, whose every field this model does not follow). For an error, `code`, and
    `message` when the design fixes it: for a 422 it may be the top-level message or the `msg`
    of one of its details (the envelope's validation style).
    """

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    code: str | None = None
    message: str | None = None
    maybe: Mapping[str, Any] = field(default_factory=dict)
    unchecked: frozenset[str] = frozenset()
    partial: bool = False

    @property
    def ok(self) -> bool:
        return self.status < 400


def error(status: int, code: str, message: str | None = None) -> Answer:
    return Answer(status, code=code, message=message)


def mismatches(expected: Answer, status: int, body: Any) -> list[str]:
    """How a real answer (status and parsed JSON body) differs from `expected`; [] if it fits."""
    problems: list[str] = []
    if status != expected.status:
        return [f"status {status}, expected {expected.status}: {body}"]
    if not expected.ok:
        if not isinstance(body, dict):
            return [f"error body is not an object: {body!r}"]
        if body.get("code") != expected.code:
            problems.append(f"code {body.get('code')!r}, expected {expected.code!r}")
        if expected.message is not None:
            said = [body.get("message")]
            if status == 422:
                said += [d.get("msg") for d in body.get("details") or [] if isinstance(d, dict)]
            if expected.message not in said:
                problems.append(f"message {said!r}, expected {expected.message!r}")
        return problems
    if status == 204:
        return problems
    if not isinstance(body, dict):
        return [f"body is not an object: {body!r}"]
    for key, value in expected.body.items():
        if key not in body:
            problems.append(f"missing {key!r}")
        elif body[key] != value:
            problems.append(f"{key} = {body[key]!r}, expected {value!r}")
    for key, value in expected.maybe.items():
        if key in body and body[key] != value:
            problems.append(f"{key} = {body[key]!r}, expected {value!r}")
    if not expected.partial:
        known = set(expected.body) | set(expected.maybe) | expected.unchecked
        extra = set(body) - known
        if extra:
            problems.append(f"unexpected fields {sorted(extra)}")
    return problems


@dataclass
class Claim:
    """A live claim: a confirmed booking, an open offer or a place in line, of one party."""

    booking_id: int
    user: str
    event_id: int
    quantity: int
    status: Status
    order: int  # creation order: GET /me/bookings lists newest first
    line_seq: int | None = None
    promoted: bool = False  # served from the line (promoted, or an offer accepted)
    offer_expires_at: float | None = None


@dataclass
class PartyEvent:
    event_id: int
    name: str
    owner: str
    capacity: int
    max_per_user: int = 1
    mode: Mode = Mode.INSTANT
    offer_seconds: int = DEFAULT_OFFER_SECONDS
    state: SaleState = SaleState.OPEN
    claims: dict[str, Claim] = field(default_factory=dict)  # live claims, by user
    next_line_seq: int = 1

    def of(self, status: Status) -> list[Claim]:
        return [c for c in self.claims.values() if c.status is status]

    @property
    def line(self) -> list[Claim]:
        """The waiting list, first entry first."""
        return sorted(self.of(Status.WAITLISTED), key=lambda c: c.line_seq or 0)

    @property
    def booked_tickets(self) -> int:
        return sum(c.quantity for c in self.of(Status.CONFIRMED))

    @property
    def offered_tickets(self) -> int:
        return sum(c.quantity for c in self.of(Status.OFFERED))

    @property
    def held(self) -> int:
        return self.booked_tickets + self.offered_tickets

    @property
    def available(self) -> int:
        return self.capacity - self.held

    @property
    def waiting_tickets(self) -> int:
        return sum(c.quantity for c in self.of(Status.WAITLISTED))

    @property
    def first_in_line_needs(self) -> int:
        line = self.line
        return line[0].quantity - self.available if line else 0

    def counts(self) -> dict[str, int]:
        return {
            "total_ticket_booked": self.booked_tickets,
            "available_tickets": self.available,
            "offered_tickets": self.offered_tickets,
            "waiting_list_count": len(self.of(Status.WAITLISTED)),
            "waiting_list_tickets": self.waiting_tickets,
            "first_in_line_needs": self.first_in_line_needs,
        }

    def status(self) -> dict[str, Any]:
        """GET /status/{id}, exactly (no sale window and no check-ins in this model)."""
        return {
            "event_name": self.name,
            **self.counts(),
            "state": self.state.value,
            "sales_start": None,
            "sales_end": None,
            "checked_in_tickets": 0,
        }

    def read(self) -> dict[str, Any]:
        """The fields of an event read (GET or PATCH /events/{id}) this model follows
        (`max_per_user` aside: see `read_answer`)."""
        return {
            "eventId": self.event_id,
            "name": self.name,
            "capacity": self.capacity,
            "waitlist_mode": self.mode.value,
            "state": self.state.value,
            **self.counts(),
        }

    def read_answer(self) -> Answer:
        # Whether an event read shows max_per_user is not fixed; where it does, it must agree.
        return Answer(200, self.read(), maybe={"max_per_user": self.max_per_user}, partial=True)

    def check(self) -> None:
        """The rules the model itself must keep after every step."""
        assert self.held <= self.capacity, "oversold"
        assert self.booked_tickets + self.offered_tickets + self.available == self.capacity
        line = self.line
        if line:
            assert self.available < line[0].quantity, "the first party fits but waits"
        assert all(c.quantity >= 1 for c in self.claims.values())
        assert all(c.quantity <= self.capacity for c in line), "a party that can never fit"
        if self.state is SaleState.CANCELLED:
            assert not self.claims


@dataclass
class PartyModel:
    """Users, events and claims, and the clock that offer deadlines are judged by."""

    max_per_user_limit: int = DEFAULT_MAX_PER_USER_LIMIT
    now: float = 0.0
    users: dict[str, bool] = field(default_factory=dict)  # name -> account open
    events: dict[int, PartyEvent] = field(default_factory=dict)
    # How the user's last ended claim on an event ended: a late answer to an expired offer is
    # told 410, anything else 404.
    last_ended: dict[tuple[str, int], Ended] = field(default_factory=dict)
    next_event_id: int = 1
    next_booking_id: int = 1
    created: int = 0

    # Users and the clock.

    def register(self, user: str) -> None:
        self.users.setdefault(user, True)

    def advance(self, seconds: float) -> None:
        """Time passes; lapsed offers stay open until someone looks (see sweep)."""
        self.now += seconds

    def sweep(self) -> int:
        """What the background sweep does: expire every lapsed offer, hand its tickets on."""
        return sum(self._expire_lapsed(event) for event in self.events.values())

    def _closed_account(self, user: str) -> Answer | None:
        if not self.users.get(user, False):
            return error(401, "invalid_token", "This account no longer exists")
        return None

    def _owned(self, user: str, event_id: int) -> PartyEvent | Answer:
        refusal = self._closed_account(user)
        if refusal is not None:
            return refusal
        event = self.events.get(event_id)
        if event is None:
            return error(404, "event_not_found", "Event not found")
        if event.owner != user:
            return error(403, "not_event_owner", "Only the event's owner can do this")
        return event

    # Events.

    def create_event(
        self,
        owner: str,
        name: str,
        tickets: int,
        *,
        max_per_user: int | None = None,
        mode: Mode = Mode.INSTANT,
        offer_seconds: int = DEFAULT_OFFER_SECONDS,
        event_id: int | None = None,
    ) -> Answer:
        """POST /initialize. `event_id`: the id the service gave (the model's own if None)."""
        refusal = self._closed_account(owner)
        if refusal is not None:
            return refusal
        if tickets < 1 or (max_per_user is not None and max_per_user < 1):
            return error(422, "validation_error", VALIDATION_FAILED)
        if max_per_user is not None and max_per_user > self.max_per_user_limit:
            return self._above_limit()
        if event_id is None:
            event_id = self.next_event_id
        self.next_event_id = max(self.next_event_id, event_id) + 1
        self.events[event_id] = PartyEvent(
            event_id, name, owner, tickets, max_per_user or 1, mode, offer_seconds
        )
        return Answer(201, {"message": EVENT_CREATED, "eventId": event_id})

    def _above_limit(self) -> Answer:
        return error(422, "validation_error")  # the message names the bound: not fixed here

    def update_event(
        self,
        owner: str,
        event_id: int,
        *,
        tickets: int | None = None,
        max_per_user: int | None = None,
        mode: Mode | None = None,
    ) -> Answer:
        """PATCH /events/{id}: the mode first, then max_per_user, then the tickets. A bound
        broken in the body is refused before the event is looked at (as validation is)."""
        if max_per_user is not None and not 1 <= max_per_user <= self.max_per_user_limit:
            return self._above_limit()
        event = self._owned(owner, event_id)
        if isinstance(event, Answer):
            return event
        if event.state is SaleState.CANCELLED:
            return error(409, "event_cancelled", "The event is cancelled")
        if tickets is not None and tickets != event.capacity:
            if tickets < event.held:
                return error(
                    409,
                    "capacity_below_held",
                    f"Tickets cannot go below the {event.held} already confirmed or offered",
                )
            if any(c.quantity > tickets for c in event.line):
                return error(409, "capacity_below_party")
        if mode is not None:
            event.mode = mode
        if max_per_user is not None:
            event.max_per_user = max_per_user  # lowering it never touches existing claims
        if tickets is not None:
            event.capacity = tickets
        self._serve_line(event)
        return event.read_answer()

    def close_event(self, owner: str, event_id: int) -> Answer:
        event = self._owned(owner, event_id)
        if isinstance(event, Answer):
            return event
        if event.state is SaleState.CANCELLED:
            return error(409, "event_cancelled", "The event is cancelled")
        event.state = SaleState.CLOSED
        return event.read_answer()

    def cancel_event(self, owner: str, event_id: int) -> Answer:
        """POST /events/{id}/cancel: every claim released with its quantity."""
        event = self._owned(owner, event_id)
        if isinstance(event, Answer):
            return event
        tickets = event.booked_tickets
        places = len(event.line)
        for claim in list(event.claims.values()):
            self._end(event, claim, Ended.EVENT_CANCELLED)
        event.state = SaleState.CANCELLED
        return Answer(
            200,
            {
                "message": EVENT_CANCELLED,
                "eventId": event_id,
                "released_tickets": tickets,
                "released_places": places,
            },
            # Offers withdrawn: whether counted as offers or as their tickets is not fixed.
            unchecked=frozenset({"released_offers"}),
        )

    # Booking.

    def book(
        self, user: str, event_id: int, quantity: int | None = None, booking_id: int | None = None
    ) -> Answer:
        """POST /book. `booking_id`: the id the service gave (the model's own if None)."""
        n = 1 if quantity is None else quantity
        if n < 1 or n > self.max_per_user_limit:
            return error(422, "validation_error", VALIDATION_FAILED)
        refusal = self._closed_account(user)
        if refusal is not None:
            return refusal
        event = self.events.get(event_id)
        if event is None:
            return error(404, "event_not_found", "Event not found")
        if event.state is SaleState.CANCELLED:
            return error(409, "event_cancelled", "The event is cancelled")
        if event.state is SaleState.CLOSED:
            return error(409, "event_closed", "The event is closed: it takes no new bookings")
        if user in event.claims:
            return error(
                409,
                "already_booked",
                "You already hold a ticket or a place in line for this event",
            )
        if n > event.max_per_user:
            message = f"quantity must be at most {event.max_per_user} for this event"
            return error(422, "validation_error", message)
        if n > event.capacity:
            message = f"A party of {n} cannot fit: the event has {event.capacity} tickets"
            return error(409, "party_too_large", message)
        if booking_id is None:
            booking_id = self.next_booking_id
        self.next_booking_id = max(self.next_booking_id, booking_id) + 1
        self.created += 1
        fits = not event.line and event.available >= n  # nobody waits, and n are free
        claim = Claim(booking_id, user, event_id, n, Status.CONFIRMED, self.created)
        event.claims[user] = claim
        body: dict[str, Any] = {"eventId": event_id, "bookingId": booking_id}
        if fits:
            return Answer(201, {**body, "message": BOOKED, "status": "confirmed", "quantity": n})
        claim.status = Status.WAITLISTED
        claim.line_seq = event.next_line_seq
        event.next_line_seq += 1
        return Answer(
            202,
            {**body, "message": WAITLISTED, "status": "waitlisted", "position": len(event.line)},
            maybe={"quantity": n},
        )

    def cancel(self, user: str, event_id: int, quantity: int | None = None) -> Answer:
        """POST /cancel, whole (no quantity, or all of it) or partial (k < N)."""
        if quantity is not None and (quantity < 1 or quantity > self.max_per_user_limit):
            return error(422, "validation_error", VALIDATION_FAILED)
        refusal = self._closed_account(user)
        if refusal is not None:
            return refusal
        event = self.events.get(event_id)
        if event is None:
            return error(404, "event_not_found", "Event not found")
        claim = event.claims.get(user)
        if claim is None:
            return error(
                404, "booking_not_found", "You hold no ticket or place in line for this event"
            )
        n = claim.quantity
        k = n if quantity is None else quantity
        if k > n:
            message = f"quantity must be at most {n}: that is what you hold"
            return error(422, "validation_error", message)
        body = {"eventId": event_id}
        if k < n:
            if claim.status is Status.OFFERED:
                return error(409, "offer_all_or_nothing")
            claim.quantity = n - k
            if claim.status is Status.WAITLISTED:
                # The party wants fewer and keeps its place; it may now fit, first in line.
                self._serve_line(event)
                return Answer(
                    200,
                    {**body, "quantity": n - k},
                    maybe={"released_tickets": 0},
                    unchecked=frozenset({"message", "outcome"}),
                )
            return self._handed_on(event, body, kept=n - k, released=k)
        if claim.status is Status.WAITLISTED:
            self._end(event, claim, Ended.LEFT)
            self._serve_line(event)  # a new first entry may fit what is free
            return Answer(
                200,
                {**body, "message": LEFT_LINE, "outcome": "left_waiting_list"},
                maybe={"quantity": 0, "released_tickets": 0},
            )
        if claim.status is Status.OFFERED:
            lapsed = self._lapsed(claim)
            self._end(event, claim, Ended.EXPIRED if lapsed else Ended.DECLINED)
        else:
            self._end(event, claim, Ended.CANCELLED)
        return self._handed_on(event, body, kept=0, released=n)

    def _handed_on(
        self, event: PartyEvent, body: dict[str, Any], *, kept: int, released: int
    ) -> Answer:
        served = self._serve_line(event)
        if not served:
            message, outcome = CANCELLED_RELEASED, "released"
        elif event.mode is Mode.OFFER:
            message, outcome = CANCELLED_OFFERED, "offered"
        else:
            message, outcome = CANCELLED_REASSIGNED, "reassigned"
        fixed = {**body, "message": message, "outcome": outcome}
        if kept:
            fixed["quantity"] = kept
        return Answer(
            200,
            fixed,
            maybe={"released_tickets": released, **({} if kept else {"quantity": 0})},
        )

    # Offers.

    def accept(self, user: str, event_id: int) -> Answer:
        found = self._open_offer(user, event_id)
        if isinstance(found, Answer):
            return found
        _, claim = found
        claim.status = Status.CONFIRMED
        claim.offer_expires_at = None
        claim.promoted = True
        return Answer(
            200,
            {
                "message": BOOKED,
                "eventId": event_id,
                "bookingId": claim.booking_id,
                "status": "confirmed",
            },
            maybe={"quantity": claim.quantity},
        )

    def decline(self, user: str, event_id: int) -> Answer:
        found = self._open_offer(user, event_id)
        if isinstance(found, Answer):
            return found
        event, claim = found
        self._end(event, claim, Ended.DECLINED)
        self._serve_line(event)
        return Answer(200, {"message": OFFER_DECLINED, "eventId": event_id})

    def _open_offer(self, user: str, event_id: int) -> tuple[PartyEvent, Claim] | Answer:
        refusal = self._closed_account(user)
        if refusal is not None:
            return refusal
        event = self.events.get(event_id)
        if event is None:
            return error(404, "event_not_found", "Event not found")
        if event.state is SaleState.CANCELLED:
            return error(409, "event_cancelled", "The event is cancelled")
        expired = error(
            410, "offer_expired", "The offer lapsed at its deadline and its ticket was passed on"
        )
        claim = event.claims.get(user)
        if claim is None or claim.status is not Status.OFFERED:
            if claim is None and self.last_ended.get((user, event_id)) is Ended.EXPIRED:
                return expired
            return error(404, "offer_not_found", "You hold no open offer for this event")
        if self._lapsed(claim):
            self._expire_lapsed(event)
            return expired
        return event, claim

    def _lapsed(self, claim: Claim) -> bool:
        return claim.offer_expires_at is not None and claim.offer_expires_at <= self.now

    def _expire_lapsed(self, event: PartyEvent) -> int:
        lapsed = [c for c in event.of(Status.OFFERED) if self._lapsed(c)]
        for claim in lapsed:
            self._end(event, claim, Ended.EXPIRED)
        if lapsed:
            self._serve_line(event)
        return len(lapsed)

    # Accounts.

    def close_account(self, user: str) -> Answer:
        """DELETE /me: every claim given back whole, each under the line rule."""
        refusal = self._closed_account(user)
        if refusal is not None:
            return refusal
        for event in self.events.values():
            if user in event.claims:
                self.cancel(user, event.event_id)
        self.users[user] = False
        return Answer(204)

    # The line rule, and how claims end.

    def _serve_line(self, event: PartyEvent) -> list[Claim]:
        """Serve the first entry as soon as enough tickets are free for its whole party, then
        the next first entry, and so on; stop at the first that does not fit. Never an entry
        behind the first one."""
        served: list[Claim] = []
        line = event.line
        while line and event.available >= line[0].quantity:
            head = line.pop(0)
            head.line_seq = None
            if event.mode is Mode.OFFER:
                head.status = Status.OFFERED
                head.offer_expires_at = self.now + event.offer_seconds
            else:
                head.status = Status.CONFIRMED
                head.promoted = True
            served.append(head)
        return served

    def _end(self, event: PartyEvent, claim: Claim, how: Ended) -> None:
        del event.claims[claim.user]
        self.last_ended[claim.user, event.event_id] = how

    # Reading back.

    def status(self, event_id: int) -> dict[str, Any]:
        return self.events[event_id].status()

    def my_bookings(self, user: str) -> list[dict[str, Any]]:
        """GET /me/bookings items, newest first, in the fields this model follows."""
        mine = sorted(
            (e.claims[user] for e in self.events.values() if user in e.claims),
            key=lambda c: -c.order,
        )
        items = []
        for claim in mine:
            line = self.events[claim.event_id].line
            position = line.index(claim) + 1 if claim.status is Status.WAITLISTED else None
            items.append(
                {
                    "bookingId": claim.booking_id,
                    "eventId": claim.event_id,
                    "status": claim.status.value,
                    "position": position,
                    "quantity": claim.quantity,
                    "promoted": claim.promoted,
                }
            )
        return items

    def check(self) -> None:
        for event in self.events.values():
            event.check()
        for event in self.events.values():
            for user, claim in event.claims.items():
                assert claim.user == user
