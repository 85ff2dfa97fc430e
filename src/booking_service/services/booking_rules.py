"""What a booking or a cancel may do, decided from the rows locked for it.

Lock order, the same in every write transaction, so two can never wait on each other in a
cycle:
    1. event rows, in ascending id        events.get_events_for_update
    2. claim rows of those events         bookings.live_claims_for_update, first_in_line_...
    3. accounts, share-locked             users.lock_open_accounts
    4. inserts                            bookings.add_claims, history, outbox
Decisions come from those locked rows, never from an earlier read.

A booking is refused, in this order (`refusal`, the one place it is written): a closed account
(as the token guard would have said), then the event (unknown, closed, cancelled, outside its
sale window), then a claim already held. Otherwise it gets a free ticket, or else a place on
the waiting list. A lone request is served by the same code as a group, as a group of one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import is_duplicate_key, is_missing_reference
from booking_service.errors import AccountGone, AlreadyBooked, AppError, EventNotFound
from booking_service.models import BookingStatus, HistoryAction
from booking_service.repositories import bookings, events, users
from booking_service.repositories.bookings import EventUser, NewClaim
from booking_service.repositories.events import LockedEvent
from booking_service.repositories.history import NewEntry
from booking_service.services.cancels import CancelOutcome, cancel_claims
from booking_service.services.line import EventChanges, write_changes
from booking_service.services.sale_window import booking_refusal


@dataclass(frozen=True, slots=True)
class BookResult:
    booking_id: int
    status: BookingStatus
    position: int | None = None  # 1-based place on the waiting list when waitlisted


class RequestKind(enum.Enum):
    BOOK = "book"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class BookOrCancel:
    """One booking or cancel asked for: what the coalescer holds and the rules serve."""

    kind: RequestKind
    event_id: int
    user_id: int

    @property
    def key(self) -> EventUser:
        return (self.event_id, self.user_id)


Answer = BookResult | CancelOutcome


def kept_form(answer: Answer) -> object:
    """The answer as kept with an idempotency key: JSON (`answer_from_kept` reads it back)."""
    if isinstance(answer, CancelOutcome):
        return answer.value
    return {"booking_id": answer.booking_id, "status": answer.status, "position": answer.position}


def answer_from_kept(kind: RequestKind, kept: Any) -> Answer:
    if kind is RequestKind.CANCEL:
        return CancelOutcome(kept)
    return BookResult(kept["booking_id"], BookingStatus(kept["status"]), kept["position"])


CLAIM_ACTIONS = {
    BookingStatus.CONFIRMED: HistoryAction.BOOKED,
    BookingStatus.WAITLISTED: HistoryAction.WAITLISTED,
}


def refusal(event: LockedEvent | None, *, account_open: bool, holds_claim: bool) -> AppError | None:
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
    cancels: dict[int, list[int]] = {}  # event id -> users, in arrival order
    for request in requests:
        if request.kind is RequestKind.CANCEL:
            cancels.setdefault(request.event_id, []).append(request.user_id)
    for event_id in sorted(cancels):
        if event_id not in changes:
            outcomes.update({(event_id, user): EventNotFound() for user in cancels[event_id]})
            continue
        cancelled = await cancel_claims(session, changes[event_id], cancels[event_id])
        outcomes.update({(event_id, user): outcome for user, outcome in cancelled.items()})
    wanted = [r.key for r in requests if r.kind is RequestKind.BOOK]
    booked = await _book(session, wanted, changes, outcomes) if wanted else []
    await write_changes(session, changes.values(), then=booked)
    return [outcomes[r.key] for r in requests]


async def _book(
    session: AsyncSession,
    wanted: list[EventUser],
    changes: Mapping[int, EventChanges],
    outcomes: dict[EventUser, Answer | AppError],
) -> list[tuple[int, NewEntry]]:
    """Book each (event, user) in this order, into `outcomes`; returns their history entries.
    Statements: lock the open accounts, find holders, insert the claims."""
    open_accounts = await users.lock_open_accounts(session, {user for _, user in wanted})
    holders = await bookings.live_claimants(session, wanted)
    claims: list[NewClaim] = []
    positions: dict[EventUser, int | None] = {}
    for event_id, user_id in wanted:
        event = changes.get(event_id)
        refused = refusal(
            None if event is None else event.event,
            account_open=user_id in open_accounts,
            holds_claim=(event_id, user_id) in holders,
        )
        if refused is not None:
            outcomes[event_id, user_id] = refused
            continue
        assert event is not None
        claims.append(_claim(event, user_id))
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
            (claim.event_id, NewEntry(booking_ids[key], claim.user_id, CLAIM_ACTIONS[claim.status]))
        )
        outcomes[key] = BookResult(booking_ids[key], claim.status, positions[key])
    return entries


def _claim(event: EventChanges, user_id: int) -> NewClaim:
    """A free ticket if there is one, else the next place on the waiting list; counted."""
    if event.available_now > 0:
        event.available -= 1
        return NewClaim(event.event.id, user_id, BookingStatus.CONFIRMED)
    line_seq = event.next_line_seq
    event.line_seq += 1
    event.waiting += 1
    return NewClaim(event.event.id, user_id, BookingStatus.WAITLISTED, line_seq)
