"""The booking rules, judged on one event from its rows: the event row, its booking rows and its
history in id order. `invariants` reads these rows from the database; tests may hand it rows
they built. Rows are read by column name; a row without `quantity` (or `checked_in_at`), or an
event row without `waiting_tickets` (or `checked_in_count`), is taken as the schema before
parties (or before check-in): one ticket per claim, nothing checked in.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from booking_service.models import BookingStatus, EventState, HistoryAction

H, S = HistoryAction, BookingStatus
LIVE = {S.CONFIRMED, S.OFFERED, S.WAITLISTED}
# A claim's life: from its status (None before it exists), each action leads to one status.
CLAIM_LIFE: dict[str | None, dict[str, str]] = {
    None: {H.BOOKED: S.CONFIRMED, H.WAITLISTED: S.WAITLISTED, H.RECEIVED: S.CONFIRMED},
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
# Actions a party may take for only part of its tickets (a partial cancel: the claim keeps the
# rest and its status).
PARTIAL: dict[str, set[str]] = {S.CONFIRMED: {H.CANCELLED}, S.WAITLISTED: {H.CANCELLED, H.LEFT}}
# What a ticket checked in at the door can still undergo: nothing but the event's end.
AFTER_CHECK_IN = {H.EVENT_CANCELLED}


class InvariantBroken(AssertionError):
    """A booking rule does not hold in the database.

    An AssertionError, so pytest reports it as a failed check; raised explicitly rather than
    with `assert`, so the bench's check still runs under `python -O`.
    """


@dataclass(frozen=True)
class InvariantReport:
    """One event's counts, once its rules hold."""

    confirmed: int  # tickets
    waiting: int  # entries in line
    available: int
    capacity: int
    offered: int  # tickets
    history_entries: int
    waiting_tickets: int
    confirmed_bookings: int
    offers: int


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantBroken(message)


def tickets(row: Any) -> int:
    """Tickets of a booking or history row: its `quantity`, one before parties existed."""
    quantity: int = getattr(row, "quantity", 1)
    return quantity


def check_event(event: Any, bookings: Sequence[Any], history: Sequence[Any]) -> InvariantReport:
    """Assert every booking rule on one event, from its rows:

    - tickets: confirmed + offered + available = capacity, nothing oversold; the event's
      counters (`offered_count` in tickets, `waiting_count` in entries, `waiting_tickets`,
      `checked_in_count` in tickets) match the rows; every claim holds at least one ticket;
    - the line rule: while anyone waits, fewer tickets are free than the first entry needs,
      and no party in line is larger than the event (it could never be served);
    - one live claim per user, live exactly when `active` is set; line numbers unique; every
      open offer has a deadline; a cancelled event holds nothing; a ticket checked in was
      never given back or moved;
    - the history, replayed in id order, is a valid life for every claim, ending in its status
      and its quantity (see _replay).

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
    checked_in = [r for r in bookings if getattr(r, "checked_in_at", None) is not None]
    _require(
        sum(map(tickets, (r for r in checked_in if r.status == S.CONFIRMED)))
        == getattr(event, "checked_in_count", 0),
        f"{where}: checked_in_count drift",
    )
    _require(
        all(r.status in (S.CONFIRMED, S.EVENT_CANCELLED) for r in checked_in),
        f"{where}: a ticket checked in was given back or moved",
    )
    _replay(where, bookings, history)
    return InvariantReport(
        confirmed=confirmed_tickets,
        waiting=len(line),
        available=event.available,
        capacity=event.capacity,
        offered=offered_tickets,
        history_entries=len(history),
        waiting_tickets=waiting_tickets,
        confirmed_bookings=len(confirmed),
        offers=len(offered),
    )


def _replay(where: str, bookings: Sequence[Any], history: Sequence[Any]) -> None:
    """Replay the history in id order against the booking rows.

    History ids are handed out under the event's row lock, so their order is the order in
    which the changes happened: an exact check, not one that trusts clocks. Each change is
    recorded once; the line was first in, first out; every promotion or offer went to the
    first entry in line at that moment and took its whole party; no ticket was booked while
    anyone waited; a partial cancel gives back fewer tickets than held; nothing but the event's
    end follows a check-in; every booking transferred away was received by one new booking,
    ticket for ticket.
    """
    rows = {r.id: r for r in bookings}
    state: dict[int, str | None] = dict.fromkeys(rows)
    held: dict[int, int] = dict.fromkeys(rows, 0)  # tickets of each claim as replayed
    waiting: list[int] = []  # a heap of line numbers; some may have left meanwhile
    in_line: set[int] = set()
    last_joined = 0
    checked_in: set[int] = set()
    given = [0, 0]  # bookings, tickets transferred away
    taken = [0, 0]  # bookings, tickets received
    for entry in history:
        row = rows.get(entry.booking_id)
        _require(row is not None, f"{where}: history {entry.id} of another event's booking")
        assert row is not None
        _require(entry.user_id == row.user_id, f"{where}: history {entry.id} of another user")
        before, action, quantity = state[row.id], entry.action, tickets(entry)
        said = f"booking {row.id} {action} {quantity} (history {entry.id})"
        _require(quantity >= 1, f"{where}: {said}: no tickets")
        if before is None:
            _require(action in CLAIM_LIFE[None], f"{where}: {said} before it existed")
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
        _require(
            row.id not in checked_in or action in AFTER_CHECK_IN,
            f"{where}: booking {row.id} went {action} after its check-in",
        )
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
        elif action == H.CHECKED_IN:
            checked_in.add(row.id)
        elif action == H.TRANSFERRED:
            given = [given[0] + 1, given[1] + quantity]
        elif action == H.RECEIVED:
            taken = [taken[0] + 1, taken[1] + quantity]
            _require(
                taken[0] <= given[0] and taken[1] <= given[1],
                f"{where}: {said}: received before given",
            )
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
    _require(
        given == taken,
        f"{where}: {given[1]} tickets given, {taken[1]} received "
        f"(in {given[0]} and {taken[0]} bookings)",
    )
