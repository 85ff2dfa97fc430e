"""The booking invariants, checked straight from the database: shared by the tests and bench."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from booking_service.db import connect
from booking_service.models import (
    Booking,
    BookingHistory,
    BookingStatus,
    Event,
    EventState,
    HistoryAction,
)

# Values per IN (...) look-up: well inside every driver's limits (seed's look-ups use it too).
LOOKUP_BATCH = 500


class InvariantBroken(AssertionError):
    """A booking rule does not hold in the database.

    An AssertionError, so pytest reports it as a failed check; raised explicitly rather than
    with `assert`, so the bench's check still runs under `python -O`.
    """


@dataclass
class InvariantReport:
    confirmed: int  # tickets
    waiting: int  # entries in line
    available: int
    capacity: int
    offered: int = 0  # tickets
    history_entries: int = 0
    waiting_tickets: int = 0


@dataclass
class InvariantFindings:
    """Every event checked: its counts when its rules hold, else what broke first."""

    reports: dict[int, InvariantReport]
    breaks: dict[int, str]

    @property
    def ok(self) -> bool:
        return not self.breaks


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantBroken(message)


async def check_invariants(url: str, event_ids: Sequence[int]) -> dict[int, InvariantReport]:
    """Assert every booking rule on these events, straight from the database.

    - confirmed + offered + available = capacity, in tickets (a booking holds `quantity`): an
      open offer holds its tickets, so no ticket is sold or offered twice and none is lost; the
      event's counters match the rows (waiting_count in entries, waiting_tickets in tickets);
    - while anyone waits, fewer tickets are free than the first entry in line wants (freed
      tickets go to the line, booked or offered, as soon as the first party fits);
    - every open offer has a deadline; a cancelled event holds nothing;
    - checked_in_count matches the confirmed tickets checked in (all of a booking's), and a
      ticket checked in was never given back or moved; every booking transferred away was
      received by one new booking;
    - nobody holds two live claims on one event; line numbers are unique;
    - the history, replayed in id order (ids are given under the event's lock), is a valid life
      for every claim that ends in the claim's current status, each change recorded once; the
      line was first in, first out; every promotion or offer went to whoever was first in line
      then; and no ticket was ever taken from the pool while someone was in line.

    Raises InvariantBroken (an AssertionError) at the first rule that does not hold.
    """
    reports: dict[int, InvariantReport] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            reports[event_id] = await _check_event(conn, event_id)
    return reports


async def find_invariant_breaks(url: str, event_ids: Sequence[int]) -> InvariantFindings:
    """Like check_invariants, but checks every event and collects what broke instead of raising."""
    findings = InvariantFindings(reports={}, breaks={})
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            try:
                findings.reports[event_id] = await _check_event(conn, event_id)
            except InvariantBroken as exc:
                findings.breaks[event_id] = str(exc)
            # Each event is read in its own transaction: a long check holds no old snapshot.
            await conn.rollback()
    return findings


async def _check_event(conn: AsyncConnection, event_id: int) -> InvariantReport:
    event = (await conn.execute(select(Event).where(Event.id == event_id))).one_or_none()
    _require(event is not None, f"event {event_id} does not exist")
    assert event is not None
    rows = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
    entries = (
        await conn.execute(
            select(BookingHistory)
            .where(BookingHistory.event_id == event_id)
            .order_by(BookingHistory.id)
        )
    ).all()
    by_status: dict[str, list[Row[Any]]] = defaultdict(list)
    for r in rows:
        by_status[r.status].append(r)
    confirmed = by_status[BookingStatus.CONFIRMED]
    offered = by_status[BookingStatus.OFFERED]
    waiting = by_status[BookingStatus.WAITLISTED]
    where = f"event {event_id}"
    confirmed_tickets = _tickets(confirmed)
    offered_tickets = _tickets(offered)
    held = confirmed_tickets + offered_tickets
    _require(held <= event.capacity, f"{where} oversold")
    _require(
        held + event.available == event.capacity,
        f"{where}: {confirmed_tickets} confirmed + {offered_tickets} offered + "
        f"{event.available} available != {event.capacity}",
    )
    _require(offered_tickets == event.offered_count, f"{where}: offered_count drift")
    _require(len(waiting) == event.waiting_count, f"{where}: waiting_count drift")
    _require(_tickets(waiting) == event.waiting_tickets, f"{where}: waiting_tickets drift")
    if waiting:
        first = min(waiting, key=lambda r: r.line_seq)
        _require(
            event.available < first.quantity,
            f"{where}: {event.available} free while the first in line wants {first.quantity}",
        )
    _require(
        all(r.offer_expires_at is not None for r in offered), f"{where}: offer without deadline"
    )
    if event.state == EventState.CANCELLED:
        _require(held + len(waiting) == 0, f"{where}: cancelled, yet claims are still held")
    live: dict[int, int] = defaultdict(int)
    for r in rows:
        if r.active == 1:
            live[r.user_id] += 1
    _require(all(count == 1 for count in live.values()), f"{where}: double claim")
    seqs = [r.line_seq for r in rows if r.line_seq is not None]
    _require(len(seqs) == len(set(seqs)), f"{where}: line number used twice")
    checked_in = [r for r in confirmed if r.checked_in_at is not None]
    _require(_tickets(checked_in) == event.checked_in_count, f"{where}: checked_in_count drift")
    _require(
        all(
            r.status in (S.CONFIRMED, S.EVENT_CANCELLED)
            for r in rows
            if r.checked_in_at is not None
        ),
        f"{where}: a ticket checked in was given back or moved",
    )
    _replay_history(where, rows, entries)
    return InvariantReport(
        confirmed=confirmed_tickets,
        waiting=len(waiting),
        available=event.available,
        capacity=event.capacity,
        offered=offered_tickets,
        history_entries=len(entries),
        waiting_tickets=_tickets(waiting),
    )


def _tickets(rows: Sequence[Row[Any]]) -> int:
    return sum(r.quantity for r in rows)


# A claim's life: from its status (None before it exists), each action leads to one status.
H, S = HistoryAction, BookingStatus
CLAIM_LIFE: dict[str | None, dict[str, str]] = {
    None: {H.BOOKED: S.CONFIRMED, H.WAITLISTED: S.WAITLISTED},
    S.WAITLISTED: {
        H.PROMOTED: S.CONFIRMED,
        H.OFFERED: S.OFFERED,
        H.LEFT: S.LEFT,
        H.EVENT_CANCELLED: S.EVENT_CANCELLED,
    },
    S.OFFERED: {
        H.ACCEPTED: S.CONFIRMED,
        H.DECLINED: S.DECLINED,
        H.EXPIRED: S.EXPIRED,
        H.EVENT_CANCELLED: S.EVENT_CANCELLED,
    },
    S.CONFIRMED: {
        H.CANCELLED: S.CANCELLED,
        H.EVENT_CANCELLED: S.EVENT_CANCELLED,
        H.TRANSFERRED: S.TRANSFERRED,
        H.CHECKED_IN: S.CONFIRMED,
    },
}
CLAIM_LIFE[None][H.RECEIVED] = S.CONFIRMED
# What a ticket checked in at the door can still undergo: nothing but the event's end.
AFTER_CHECK_IN = {H.EVENT_CANCELLED}


def _replay_history(where: str, rows: Sequence[Row[Any]], entries: Sequence[Row[Any]]) -> None:
    """Replay an event's history in id order against its booking rows.

    History ids are handed out under the event's row lock, so their order is the order in
    which the changes happened: an exact check, not one that trusts clocks.
    """
    bookings = {r.id: r for r in rows}
    state: dict[int, str | None] = dict.fromkeys(bookings)
    tickets: dict[int, int] = {}  # tickets of each claim, as its history says
    line: list[int] = []  # a heap of the line numbers of the people waiting
    in_line: set[int] = set()
    last_joined = 0
    checked_in: set[int] = set()
    transferred = received = 0
    for entry in entries:
        booking = bookings.get(entry.booking_id)
        _require(booking is not None, f"{where}: history {entry.id} of another event's booking")
        assert booking is not None
        _require(entry.user_id == booking.user_id, f"{where}: history {entry.id} of another user")
        before = state[booking.id]
        if _gives_up_part(entry, tickets.get(booking.id, 0)):
            tickets[booking.id] -= entry.quantity  # the claim keeps the rest, as it is
            continue
        after = CLAIM_LIFE.get(before, {}).get(entry.action)
        _require(
            after is not None,
            f"{where}: booking {booking.id} went {before} -> {entry.action} (history {entry.id})",
        )
        _require(
            booking.id not in checked_in or entry.action in AFTER_CHECK_IN,
            f"{where}: booking {booking.id} went {entry.action} after its check-in",
        )
        if entry.action == H.CHECKED_IN:
            checked_in.add(booking.id)
        elif entry.action == H.TRANSFERRED:
            transferred += 1
        elif entry.action == H.RECEIVED:
            received += 1
            _require(received <= transferred, f"{where}: ticket received before given")
        if before is None:
            tickets[booking.id] = entry.quantity
        _require(
            entry.quantity == tickets[booking.id],
            f"{where}: booking {booking.id} of {tickets[booking.id]} tickets {entry.action} "
            f"for {entry.quantity} (history {entry.id})",
        )
        if entry.action == H.BOOKED:
            _require(
                not in_line,
                f"{where}: booking {booking.id} took a free ticket while line "
                f"{min(in_line) if in_line else None} was waiting (history {entry.id})",
            )
        elif entry.action == H.WAITLISTED:
            _require(booking.line_seq > last_joined, f"{where}: line {booking.line_seq} not last")
            last_joined = booking.line_seq
            heapq.heappush(line, booking.line_seq)
            in_line.add(booking.line_seq)
        elif before == S.WAITLISTED:
            if entry.action in (H.PROMOTED, H.OFFERED):
                while line[0] not in in_line:  # people who left meanwhile
                    heapq.heappop(line)
                _require(
                    line[0] == booking.line_seq,
                    f"{where}: booking {booking.id} (line {booking.line_seq}) {entry.action} "
                    f"ahead of line {line[0]} (history {entry.id})",
                )
            in_line.discard(booking.line_seq)
        state[booking.id] = after
    for booking in rows:
        _require(
            booking.active != 1 or tickets.get(booking.id) == booking.quantity,
            f"{where}: booking {booking.id} holds {booking.quantity}, its history says "
            f"{tickets.get(booking.id)}",
        )
        _require(
            state[booking.id] == booking.status,
            f"{where}: booking {booking.id} is {booking.status}, its history says "
            f"{state[booking.id]}",
        )
    waiting = {r.line_seq for r in rows if r.status == BookingStatus.WAITLISTED}
    _require(in_line == waiting, f"{where}: the line replayed is not the line")
    _require(transferred == received, f"{where}: {transferred} given, {received} received")


def _gives_up_part(entry: Row[Any], held: int) -> bool:
    """A partial cancel or leave: fewer tickets given up than the claim has."""
    return entry.action in (H.CANCELLED, H.LEFT) and entry.quantity < held


async def active_claims(
    url: str, event_ids: Sequence[int]
) -> dict[tuple[int, int], tuple[str, int]]:
    """{(event id, user id): (status, tickets)} for every live claim (ticket(s) or place in
    line)."""
    claims: dict[tuple[int, int], tuple[str, int]] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for start in range(0, len(event_ids), LOOKUP_BATCH):
            batch = list(event_ids[start : start + LOOKUP_BATCH])
            rows = await conn.execute(
                select(Booking.event_id, Booking.user_id, Booking.status, Booking.quantity).where(
                    Booking.event_id.in_(batch), Booking.active == 1
                )
            )
            claims.update({(r.event_id, r.user_id): (r.status, r.quantity) for r in rows})
    return claims
