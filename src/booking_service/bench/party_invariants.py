"""The booking invariants with parties (issue 16): a claim holds `quantity` tickets.

`check_party_event` judges one event from its rows alone (the event row, its booking rows and
its history in id order), so tests can hand it rows they built and the bench rows it read.
Rows are read by column name; a row without `quantity`, or an event row without
`waiting_tickets`, is taken as one ticket per claim (the schema before parties), so the same
checks hold for single-ticket events and can stand in for `invariants.check_invariants`.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from booking_service.bench.invariants import CLAIM_LIFE, InvariantBroken
from booking_service.db import connect
from booking_service.models import (
    Booking,
    BookingHistory,
    BookingStatus,
    Event,
    EventState,
    HistoryAction,
)

H, S = HistoryAction, BookingStatus
LIVE = {S.CONFIRMED, S.OFFERED, S.WAITLISTED}
# Actions that start a claim, and those a party may take for only part of its tickets (a
# partial cancel: the claim keeps the rest and its status).
CREATED_BY = {H.BOOKED, H.WAITLISTED, H.RECEIVED}
PARTIAL: dict[str, set[str]] = {S.CONFIRMED: {H.CANCELLED}, S.WAITLISTED: {H.CANCELLED, H.LEFT}}


@dataclass(frozen=True)
class PartyReport:
    """One event's counts, once its rules hold."""

    capacity: int
    available: int
    confirmed_tickets: int
    offered_tickets: int
    waiting_entries: int
    waiting_tickets: int
    confirmed_bookings: int
    offers: int
    history_entries: int


@dataclass
class PartyFindings:
    """Every event checked: its counts when its rules hold, else what broke first."""

    reports: dict[int, PartyReport]
    breaks: dict[int, str]

    @property
    def ok(self) -> bool:
        return not self.breaks


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantBroken(message)


def tickets(row: Any) -> int:
    """Tickets of a booking or history row: its `quantity`, one before parties existed."""
    quantity: int = getattr(row, "quantity", 1)
    return quantity


def check_party_event(event: Any, bookings: Sequence[Any], history: Sequence[Any]) -> PartyReport:
    """Assert every booking rule with parties on one event, from its rows:

    - tickets: confirmed + offered + available = capacity, nothing oversold; the event's
      counters (`offered_count` in tickets, `waiting_count` in entries, `waiting_tickets`)
      match the rows; every claim holds at least one ticket;
    - the line rule: while anyone waits, fewer tickets are free than the first entry needs,
      and no party in line is larger than the event (it could never be served);
    - one live claim per user, live exactly when `active` is set; line numbers unique; every
      open offer has a deadline; a cancelled event holds nothing;
    - the history, replayed in id order, is a valid life for every claim, ending in its status
      and its quantity; every promotion or offer went to the first entry in line at that
      moment and took its whole party; no ticket was booked while anyone waited; a partial
      cancel gives back fewer tickets than held; tickets transferred = tickets received.

    `event`: a row of `event`; `bookings`: every `booking` row of the event; `history`: every
    `history` row of the event, in id order. Raises InvariantBroken at the first rule broken.
    """
    where = f"event {event.id}"
    by_status: dict[str, list[Any]] = defaultdict(list)
    for row in bookings:
        by_status[row.status].append(row)
    confirmed, offered = by_status[S.CONFIRMED], by_status[S.OFFERED]
    line = sorted(by_status[S.WAITLISTED], key=lambda r: r.line_seq)
    confirmed_tickets = sum(map(tickets, confirmed))
    offered_tickets = sum(map(tickets, offered))
    waiting_tickets = sum(map(tickets, line))
    held = confirmed_tickets + offered_tickets

    _require(all(tickets(r) >= 1 for r in bookings), f"{where}: a claim of no tickets")
    _require(held <= event.capacity, f"{where} oversold: {held} tickets of {event.capacity}")
    _require(
        held + event.available == event.capacity,
        f"{where}: {confirmed_tickets} confirmed + {offered_tickets} offered + "
        f"{event.available} available != {event.capacity}",
    )
    _require(
        offered_tickets == event.offered_count,
        f"{where}: offered_count {event.offered_count}, offers hold {offered_tickets} tickets",
    )
    _require(
        len(line) == event.waiting_count,
        f"{where}: waiting_count {event.waiting_count}, {len(line)} entries in line",
    )
    recorded = getattr(event, "waiting_tickets", waiting_tickets)
    _require(
        recorded == waiting_tickets,
        f"{where}: waiting_tickets {recorded}, the line wants {waiting_tickets}",
    )
    if line:
        head = line[0]
        _require(
            event.available < tickets(head),
            f"{where}: {event.available} free while the first entry (line {head.line_seq}) "
            f"waits for {tickets(head)}",
        )
    largest = max(map(tickets, line), default=0)
    _require(
        largest <= event.capacity,
        f"{where}: a party of {largest} waits for an event of {event.capacity} tickets",
    )
    _require(
        all(r.offer_expires_at is not None for r in offered), f"{where}: offer without deadline"
    )
    if event.state == EventState.CANCELLED:
        _require(held + len(line) == 0, f"{where}: cancelled, yet claims are still held")
    live: dict[int, int] = defaultdict(int)
    for row in bookings:
        _require(
            (row.active == 1) == (row.status in LIVE),
            f"{where}: booking {row.id} is {row.status} with active={row.active}",
        )
        if row.active == 1:
            live[row.user_id] += 1
    doubled = sorted(user for user, count in live.items() if count > 1)
    _require(not doubled, f"{where}: double claim by user {doubled[:1]}")
    seqs = [r.line_seq for r in bookings if r.line_seq is not None]
    _require(len(seqs) == len(set(seqs)), f"{where}: line number used twice")
    _replay(where, bookings, history)
    return PartyReport(
        capacity=event.capacity,
        available=event.available,
        confirmed_tickets=confirmed_tickets,
        offered_tickets=offered_tickets,
        waiting_entries=len(line),
        waiting_tickets=waiting_tickets,
        confirmed_bookings=len(confirmed),
        offers=len(offered),
        history_entries=len(history),
    )


def _replay(where: str, bookings: Sequence[Any], history: Sequence[Any]) -> None:
    """Replay the history in id order (ids are handed out under the event's lock, so their
    order is the order of the changes) against the booking rows."""
    rows = {r.id: r for r in bookings}
    state: dict[int, str | None] = dict.fromkeys(rows)
    held: dict[int, int] = dict.fromkeys(rows, 0)  # tickets of each claim as replayed
    waiting: list[int] = []  # a heap of line numbers; some may have left meanwhile
    in_line: set[int] = set()
    last_joined = 0
    transferred = received = 0
    for entry in history:
        row = rows.get(entry.booking_id)
        _require(row is not None, f"{where}: history {entry.id} of another event's booking")
        assert row is not None
        _require(entry.user_id == row.user_id, f"{where}: history {entry.id} of another user")
        before, action, quantity = state[row.id], entry.action, tickets(entry)
        said = f"booking {row.id} {action} {quantity} (history {entry.id})"
        _require(quantity >= 1, f"{where}: {said}: no tickets")
        if before is None:
            _require(action in CREATED_BY, f"{where}: {said} before it existed")
            held[row.id] = quantity
        elif action in PARTIAL.get(before, set()) and quantity < held[row.id]:
            held[row.id] -= quantity  # a partial cancel: the rest stays, as it was
            continue
        else:
            _require(
                quantity == held[row.id],
                f"{where}: {said}, but it held {held[row.id]}: not the whole party",
            )
        after = CLAIM_LIFE.get(before, {}).get(action)
        _require(after is not None, f"{where}: {said}: {before} cannot go {action}")
        if action == H.BOOKED:
            _require(not in_line, f"{where}: {said} while line {min(in_line or [0])} waited")
        elif action == H.WAITLISTED:
            _require(row.line_seq > last_joined, f"{where}: line {row.line_seq} not last")
            last_joined = row.line_seq
            heapq.heappush(waiting, row.line_seq)
            in_line.add(row.line_seq)
        elif before == S.WAITLISTED:
            if action in (H.PROMOTED, H.OFFERED):
                while waiting[0] not in in_line:  # entries that left meanwhile
                    heapq.heappop(waiting)
                _require(
                    waiting[0] == row.line_seq,
                    f"{where}: {said} (line {row.line_seq}) ahead of line {waiting[0]}",
                )
            in_line.discard(row.line_seq)
        elif action == H.TRANSFERRED:
            transferred += quantity
        elif action == H.RECEIVED:
            received += quantity
            _require(received <= transferred, f"{where}: {said}: received before given")
        state[row.id] = after
    for row in bookings:
        _require(
            state[row.id] == row.status,
            f"{where}: booking {row.id} is {row.status}, its history says {state[row.id]}",
        )
        _require(
            held[row.id] == tickets(row),
            f"{where}: booking {row.id} holds {tickets(row)}, its history says {held[row.id]}",
        )
    live_line = {r.line_seq for r in bookings if r.status == S.WAITLISTED}
    _require(in_line == live_line, f"{where}: the line replayed is not the line")
    _require(transferred == received, f"{where}: {transferred} tickets given, {received} received")


async def _read_event(conn: AsyncConnection, event_id: int) -> PartyReport:
    event = (await conn.execute(select(Event).where(Event.id == event_id))).one_or_none()
    _require(event is not None, f"event {event_id} does not exist")
    rows = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
    history = (
        await conn.execute(
            select(BookingHistory)
            .where(BookingHistory.event_id == event_id)
            .order_by(BookingHistory.id)
        )
    ).all()
    return check_party_event(event, rows, history)


async def check_party_invariants(url: str, event_ids: Sequence[int]) -> dict[int, PartyReport]:
    """check_party_event on each of these events, read straight from the database; raises
    InvariantBroken (an AssertionError) at the first rule that does not hold."""
    reports: dict[int, PartyReport] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            reports[event_id] = await _read_event(conn, event_id)
    return reports


async def find_party_invariant_breaks(url: str, event_ids: Sequence[int]) -> PartyFindings:
    """Like check_party_invariants, but checks every event and collects what broke."""
    findings = PartyFindings(reports={}, breaks={})
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            try:
                findings.reports[event_id] = await _read_event(conn, event_id)
            except InvariantBroken as exc:
                findings.breaks[event_id] = str(exc)
            # Each event is read in its own transaction: a long check holds no old snapshot.
            await conn.rollback()
    return findings
