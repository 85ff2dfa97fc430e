"""The waiting list (`line` in code): what happens to it when tickets are freed, shared by
every transaction that frees tickets (cancel, partial cancel, decline, expiry, a capacity
increase, an account closing) or changes the line's first entry.

These functions run inside a caller's transaction, after it locked the event row: they decide
from that locked row and the rows they lock after it. What a transaction does to the event's
counters, history and webhook messages is gathered in `EventChanges` and written at its end
(`write_changes`), in one UPDATE and one multi-row INSERT each for all its events, so a
transaction's statement count does not grow with what it records.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.models import BookingStatus, HistoryAction, WaitlistMode
from booking_service.repositories import bookings, events, history, outbox
from booking_service.repositories.bookings import LockedBooking
from booking_service.repositories.events import CounterMoves, LockedEvent
from booking_service.repositories.history import NewEntry


@dataclass
class EventChanges:
    """Counter moves, history entries and webhook messages of one transaction on one locked
    event, written together at its end (`write_changes`)."""

    event: LockedEvent
    available: int = 0
    waiting: int = 0
    waiting_tickets: int = 0
    offered: int = 0
    line_seq: int = 0  # places on the waiting list handed out
    # Other columns of the event row to set (organizer changes), in the same UPDATE.
    fields: dict[str, Any] = field(default_factory=dict)
    entries: list[NewEntry] = field(default_factory=list)
    # Webhook messages (kind, data), announced if and only if the transaction commits.
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        """The one clock reading of the transaction: the database's, taken with the event's
        lock. Deadlines are judged and every change is stamped with it."""
        return self.event.now

    def record(
        self, claim: LockedBooking, action: HistoryAction, quantity: int | None = None
    ) -> None:
        """A history entry for the claim, for `quantity` of its tickets (all, unless said)."""
        tickets = claim.quantity if quantity is None else quantity
        self.entries.append(NewEntry(claim.id, claim.user_id, action, tickets))

    @property
    def available_now(self) -> int:
        return self.event.available + self.available

    @property
    def waiting_now(self) -> int:
        return self.event.waiting_count + self.waiting

    @property
    def next_line_seq(self) -> int:
        return self.event.next_line_seq + self.line_seq

    def moves(self) -> CounterMoves:
        return CounterMoves(
            self.available, self.waiting, self.waiting_tickets, self.offered, self.line_seq
        )

    async def write(self, session: AsyncSession) -> None:
        await write_changes(session, [self])

    def announce(self, kind: str, claim: LockedBooking, **data: Any) -> None:
        self.messages.append(
            (
                kind,
                {
                    "booking_id": claim.id,
                    "event_id": self.event.id,
                    "user_id": claim.user_id,
                    "quantity": claim.quantity,
                }
                | data,
            )
        )


async def write_changes(
    session: AsyncSession,
    changes: Collection[EventChanges],
    *,
    then: Sequence[tuple[int, NewEntry]] = (),
) -> None:
    """Write what one transaction changed on these events: one UPDATE of the counters, one
    INSERT of history (each event's entries, then `then`'s (event id, entry) pairs, in that
    order) and one of webhook messages, however many events.

    An event whose row only moves a counter, or only records history, writes just that."""
    moves = {c.event.id: c.moves() for c in changes if c.moves() or c.fields}
    if moves:
        fields = next((c.fields for c in changes if c.fields), {})
        await events.move_counters(session, moves, **fields)
    entries = [(c.event.id, entry) for c in changes for entry in c.entries]
    entries.extend(then)
    if entries:
        now = next(iter(changes)).now
        await history.add_entries_of_events(session, entries, at=now)
    messages = [message for c in changes for message in c.messages]
    if messages:
        await outbox.enqueue_many(session, messages)


@dataclass(frozen=True, slots=True)
class HandedOn:
    """Where freed tickets went (the rest stayed free: nobody waits, or the first entry in line
    wants more than there is)."""

    promoted: list[LockedBooking]  # entries booked whole (instant mode)
    offered: list[LockedBooking]  # entries offered their tickets (offer mode)

    @property
    def tickets(self) -> int:
        return sum(claim.quantity for claim in self.promoted + self.offered)


async def hand_on(session: AsyncSession, changes: EventChanges, freed: int) -> HandedOn:
    """Add `freed` tickets to the pool, then serve the line by its rule (strict first come,
    first served, by entry): the first entry gets its whole party's tickets as soon as enough
    are free, booked at once (instant mode) or offered until one deadline (offer mode), then
    the next, stopping at the first that does not fit. Never an entry behind it, so while
    anyone waits fewer tickets are free than the first entry wants.

    Every promotion and every offer the service makes happens here. Called with freed == 0
    after a change in the line itself (its first entry left or wants fewer).
    """
    changes.available += freed
    event = changes.event
    room = changes.available_now
    # Each entry wants at least one ticket: no more than `room` of them can be served.
    count = min(room, changes.waiting_now)
    firsts = await bookings.first_in_line_for_update(session, event.id, count) if count else []
    served: list[LockedBooking] = []
    for claim in firsts:
        if claim.quantity > room:
            break
        room -= claim.quantity
        served.append(claim)
    if not served:
        return HandedOn([], [])
    tickets = sum(claim.quantity for claim in served)
    last_line_seq = served[-1].line_seq
    assert last_line_seq is not None
    changes.available -= tickets
    changes.waiting -= len(served)
    changes.waiting_tickets -= tickets
    if event.waitlist_mode is WaitlistMode.OFFER:
        expires_at = changes.now + timedelta(seconds=event.offer_seconds)
        await bookings.offer_through(
            session, event_id=event.id, last_line_seq=last_line_seq, expires_at=expires_at
        )
        changes.offered += tickets
        for claim in served:
            changes.record(claim, HistoryAction.OFFERED)
            changes.announce(
                outbox.BOOKING_OFFERED, claim, offered_at=changes.now, expires_at=expires_at
            )
        return HandedOn([], served)
    await bookings.promote_through(
        session, event_id=event.id, last_line_seq=last_line_seq, at=changes.now
    )
    for claim in served:
        changes.record(claim, HistoryAction.PROMOTED)
        changes.announce(outbox.BOOKING_PROMOTED, claim, promoted_at=changes.now)
    return HandedOn(served, [])


# How a claim ends, by what ended it; in the order a transaction that ends claims in several
# ways records them (people leaving the waiting list first, so the waiting list moves up for them).
ENDED_AS = {
    HistoryAction.LEFT: BookingStatus.LEFT,
    HistoryAction.CANCELLED: BookingStatus.CANCELLED,
    HistoryAction.DECLINED: BookingStatus.DECLINED,
    HistoryAction.EXPIRED: BookingStatus.EXPIRED,
}


async def end_claims(
    session: AsyncSession,
    changes: EventChanges,
    claims: Sequence[LockedBooking],
    action: HistoryAction,
) -> None:
    """End these live claims in one way (one of ENDED_AS), record each in the history, and
    take them off the event's waiting list and open-offer counts. A confirmed booking's
    tickets are not counted here: whoever ends it hands them on."""
    await bookings.end(session, [claim.id for claim in claims], ENDED_AS[action], changes.now)
    for claim in claims:
        changes.record(claim, action)
        if claim.status is BookingStatus.WAITLISTED:
            changes.waiting -= 1
            changes.waiting_tickets -= claim.quantity
        elif claim.status is BookingStatus.OFFERED:
            changes.offered -= claim.quantity


async def give_up_offers(
    session: AsyncSession,
    changes: EventChanges,
    claims: list[LockedBooking],
    action: HistoryAction,
) -> HandedOn:
    """End open offers (declined or expired) and hand their tickets on."""
    await end_claims(session, changes, claims, action)
    return await hand_on(session, changes, sum(claim.quantity for claim in claims))


async def expire_lapsed_offers(session: AsyncSession, changes: EventChanges) -> int:
    """Expire the event's open offers whose deadline has passed, hand their tickets on, and
    return how many offers expired. The deadline is judged from rows locked now, so however many
    workers try at once, each offer expires once."""
    lapsed = await bookings.lapsed_offers_for_update(session, changes.event.id, changes.now)
    if lapsed:
        await give_up_offers(session, changes, lapsed, HistoryAction.EXPIRED)
    return len(lapsed)


def is_lapsed(claim: LockedBooking, now: datetime) -> bool:
    return claim.offer_expires_at is not None and claim.offer_expires_at <= now
