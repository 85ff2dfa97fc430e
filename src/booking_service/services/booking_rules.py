"""What a booking or a cancel may do, decided from the rows locked for it.

Lock order, the same in every write transaction, so two can never wait on each other in a
cycle:
    1. event rows, in ascending id        events.get_events_for_update
    2. claim rows of those events         bookings.live_claims_for_update, first_in_line_...
    3. accounts, share-locked             users.lock_open_accounts
    4. inserts                            bookings.add_claims, history, outbox
Decisions come from those locked rows, never from an earlier read.

A booking of N tickets (a party, all or nothing) is refused, in this order (`refusal`, the one
place it is written): a closed account (as the token guard would have said), then the event
(unknown, closed, cancelled, outside its sale window), then a claim already held, then N above
the event's max_per_user (422), then N above its capacity (409: it could never be served).
Otherwise, if nobody waits and N tickets are free, it gets them; else the whole party joins
the line as one entry: a newcomer never passes anyone waiting. Requests of a group are judged
in arrival order, so once one joins an event's line, everyone after it does too. A lone
request is served by the same code as a group, as a group of one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import is_duplicate_key, is_missing_reference
from booking_service.errors import (
    AccountGone,
    AlreadyBooked,
    AppError,
    EventNotFound,
    PartyTooLarge,
    QuantityAboveLimit,
)
from booking_service.models import BookingStatus, HistoryAction
from booking_service.repositories import bookings, events, users
from booking_service.repositories.bookings import EventUser, NewClaim
from booking_service.repositories.events import LockedEvent
from booking_service.repositories.history import NewEntry
from booking_service.services.cancels import Cancel, Cancelled, CancelOutcome, cancel_claims
from booking_service.services.line import EventChanges, write_changes
from booking_service.services.sale_window import booking_refusal


@dataclass(frozen=True, slots=True)
class BookResult:
    booking_id: int
    status: BookingStatus
    position: int | None = None  # 1-based place on the waiting list when waitlisted
    quantity: int = 1  # tickets booked, or wanted in line


class RequestKind(enum.Enum):
    BOOK = "book"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class BookOrCancel:
    """One booking or cancel asked for: what the coalescer holds and the rules serve."""

    kind: RequestKind
    event_id: int
    user_id: int
    # Tickets to book (a party), or to give up (None: the whole claim).
    quantity: int | None = None

    @property
    def tickets(self) -> int:
        """Tickets a booking asks for."""
        return 1 if self.quantity is None else self.quantity

    @property
    def key(self) -> EventUser:
        return (self.event_id, self.user_id)


Answer = BookResult | Cancelled


def kept_form(answer: Answer) -> object:
    """The answer as kept with an idempotency key: JSON (`answer_from_kept` reads it back)."""
    if isinstance(answer, Cancelled):
        return {"outcome": answer.outcome, "released": answer.released, "kept": answer.kept}
    return {
        "booking_id": answer.booking_id,
        "status": answer.status,
        "position": answer.position,
        "quantity": answer.quantity,
    }


def answer_from_kept(kind: RequestKind, kept: Any) -> Answer:
    # Answers kept before parties existed hold one ticket: a bare outcome, or no quantity.
    if kind is RequestKind.CANCEL:
        if isinstance(kept, str):
            return Cancelled(CancelOutcome(kept))
        return Cancelled(CancelOutcome(kept["outcome"]), kept["released"], kept["kept"])
    return BookResult(
        kept["booking_id"],
        BookingStatus(kept["status"]),
        kept["position"],
        kept.get("quantity", 1),
    )


CLAIM_ACTIONS = {
    BookingStatus.CONFIRMED: HistoryAction.BOOKED,
    BookingStatus.WAITLISTED: HistoryAction.WAITLISTED,
}


def refusal(
    event: LockedEvent | None, *, account_open: bool, holds_claim: bool, quantity: int = 1
) -> AppError | None:
    """Why this booking is refused, if it is: the order of refusals, for every path."""
    if not account_open:
        return AccountGone()
    if event is None:
        return EventNotFound()
    closed = booking_refusal(event.state, event.sales_start, event.sales_end, event.now)
    if closed is not None:
        return closed
    if holds_claim:
        return AlreadyBooked()
    if quantity > event.max_per_user:
        return QuantityAboveLimit(event.max_per_user)
    if quantity > event.capacity:
        # It could never be served: it would wait forever and block everyone behind it.
        return PartyTooLarge(quantity, event.capacity)
    return None


def integrity_refusal(exc: IntegrityError) -> Exception:
    """The database's own keys agree with the checks made under the locks; kept as a second
    line, they answer as those checks would have."""
    if is_duplicate_key(exc):
        return AlreadyBooked()
    if is_missing_reference(exc):
        return AccountGone()
    return exc


async def book_and_cancel(
    session: AsyncSession, requests: Sequence[BookOrCancel]
) -> list[Answer | AppError]:
    """Serve distinct (event, user) requests in the caller's transaction: lock every event
    they name, serve each event's cancels, then the bookings (from the counters as the cancels
    left them), and write everything at the end. A constant number of statements whatever
    the number of requests or events."""
    locked = await events.get_events_for_update(session, {r.event_id for r in requests})
    changes = {event_id: EventChanges(event) for event_id, event in locked.items()}
    outcomes: dict[EventUser, Answer | AppError] = {}
    cancels: dict[int, list[Cancel]] = {}  # event id -> (user, tickets), in arrival order
    for request in requests:
        if request.kind is RequestKind.CANCEL:
            cancels.setdefault(request.event_id, []).append((request.user_id, request.quantity))
    for event_id in sorted(cancels):
        if event_id not in changes:
            outcomes.update({(event_id, user): EventNotFound() for user, _ in cancels[event_id]})
            continue
        cancelled = await cancel_claims(session, changes[event_id], cancels[event_id])
        outcomes.update({(event_id, user): outcome for user, outcome in cancelled.items()})
    wanted = {r.key: r.tickets for r in requests if r.kind is RequestKind.BOOK}
    booked = await _book(session, wanted, changes, outcomes) if wanted else []
    await write_changes(session, changes.values(), then=booked)
    return [outcomes[r.key] for r in requests]


async def _book(
    session: AsyncSession,
    wanted: Mapping[EventUser, int],
    changes: Mapping[int, EventChanges],
    outcomes: dict[EventUser, Answer | AppError],
) -> list[tuple[int, NewEntry]]:
    """Book each (event, user) for its tickets, in this order, into `outcomes`; returns their
    history entries. Statements: lock the open accounts, find holders, insert the claims."""
    open_accounts = await users.lock_open_accounts(session, {user for _, user in wanted})
    holders = await bookings.live_claimants(session, wanted)
    claims: list[NewClaim] = []
    positions: dict[EventUser, int | None] = {}
    for (event_id, user_id), tickets in wanted.items():
        event = changes.get(event_id)
        refused = refusal(
            None if event is None else event.event,
            account_open=user_id in open_accounts,
            holds_claim=(event_id, user_id) in holders,
            quantity=tickets,
        )
        if refused is not None:
            outcomes[event_id, user_id] = refused
            continue
        assert event is not None
        claims.append(_claim(event, user_id, tickets))
        positions[event_id, user_id] = None if claims[-1].line_seq is None else event.waiting_now
    if not claims:
        return []
    # The database's clock, read with the locks (one statement, so one reading for all).
    now = changes[claims[0].event_id].now
    booking_ids = await bookings.add_claims(session, claims, at=now)
    entries: list[tuple[int, NewEntry]] = []
    for claim in claims:
        key = (claim.event_id, claim.user_id)
        entries.append(
            (
                claim.event_id,
                NewEntry(
                    booking_ids[key], claim.user_id, CLAIM_ACTIONS[claim.status], claim.quantity
                ),
            )
        )
        outcomes[key] = BookResult(booking_ids[key], claim.status, positions[key], claim.quantity)
    return entries


def _claim(event: EventChanges, user_id: int, tickets: int) -> NewClaim:
    """The tickets if nobody waits and they are free, else the next place on the waiting list
    for the whole party; counted."""
    if event.waiting_now == 0 and event.available_now >= tickets:
        event.available -= tickets
        return NewClaim(event.event.id, user_id, BookingStatus.CONFIRMED, quantity=tickets)
    line_seq = event.next_line_seq
    event.line_seq += 1
    event.waiting += 1
    event.waiting_tickets += tickets
    return NewClaim(event.event.id, user_id, BookingStatus.WAITLISTED, line_seq, tickets)
