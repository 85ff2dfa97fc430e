"""check_event, the verdict on party bookings, must notice every broken rule.

Each test starts from hand-built rows of a valid event with parties, breaks one rule, and
expects the check to name it. The last tests read real events made through today's API (one
ticket per claim) through the database wrapper: they must pass as they are.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from booking_service.bench.invariants import (
    InvariantBroken,
    check_event,
    check_invariants,
    find_invariant_breaks,
)
from booking_service.models import BookingStatus as S
from booking_service.models import EventState
from booking_service.models import HistoryAction as H
from tests.support.api import book, cancel, create_event, register_and_login
from tests.support.databases import Database

DEADLINE = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class EventRow:
    id: int
    capacity: int
    available: int
    offered_count: int
    waiting_count: int
    waiting_tickets: int
    state: str = EventState.OPEN


@dataclass
class BookingRow:
    id: int
    user_id: int
    status: str
    quantity: int
    active: int | None = 1
    line_seq: int | None = None
    offer_expires_at: datetime | None = None


@dataclass
class HistoryRow:
    id: int
    booking_id: int
    user_id: int
    action: str
    quantity: int


@dataclass
class Rows:
    event: EventRow
    bookings: list[BookingRow]
    history: list[HistoryRow]

    def booking(self, booking_id: int) -> BookingRow:
        return next(b for b in self.bookings if b.id == booking_id)

    def add(self, booking_id: int, action: str, quantity: int) -> None:
        user_id = self.booking(booking_id).user_id
        self.history.append(
            HistoryRow(len(self.history) + 1, booking_id, user_id, action, quantity)
        )

    def check(self) -> None:
        check_event(self.event, self.bookings, self.history)


def _valid() -> Rows:
    """Six tickets. Ann books 3; Ben's party of 4 and Cat's of 1 queue; Ann gives back 1, so
    4 are free and Ben's whole party is booked; Cat waits with nothing free."""
    rows = Rows(
        EventRow(1, capacity=6, available=0, offered_count=0, waiting_count=1, waiting_tickets=1),
        [
            BookingRow(11, 101, S.CONFIRMED, 2),
            BookingRow(12, 102, S.CONFIRMED, 4, line_seq=1),
            BookingRow(13, 103, S.WAITLISTED, 1, line_seq=2),
        ],
        [],
    )
    rows.add(11, H.BOOKED, 3)
    rows.add(12, H.WAITLISTED, 4)
    rows.add(13, H.WAITLISTED, 1)
    rows.add(11, H.CANCELLED, 1)
    rows.add(12, H.PROMOTED, 4)
    return rows


def _broken(rows: Rows, match: str) -> None:
    with pytest.raises(InvariantBroken, match=match):
        rows.check()


def test_a_valid_event_with_parties_passes() -> None:
    rows = _valid()
    report = check_event(rows.event, rows.bookings, rows.history)
    assert (report.confirmed, report.confirmed_bookings) == (6, 2)
    assert (report.waiting, report.waiting_tickets, report.available) == (1, 1, 0)
    assert report.history_entries == 5


def test_an_open_party_offer_with_a_deadline_passes() -> None:
    rows = _valid()
    rows.bookings[1].status, rows.bookings[1].offer_expires_at = S.OFFERED, DEADLINE
    rows.history[-1].action = H.OFFERED
    rows.event.offered_count = 4
    report = check_event(rows.event, rows.bookings, rows.history)
    assert (report.offered, report.offers) == (4, 1)


def test_rows_without_quantity_count_one_ticket_each() -> None:
    @dataclass
    class OldEvent:
        id: int = 1
        capacity: int = 1
        available: int = 0
        offered_count: int = 0
        waiting_count: int = 0
        state: str = EventState.OPEN

    @dataclass
    class OldBooking:
        id: int = 5
        user_id: int = 9
        status: str = S.CONFIRMED
        active: int | None = 1
        line_seq: int | None = None
        offer_expires_at: datetime | None = None

    @dataclass
    class OldEntry:
        id: int = 1
        booking_id: int = 5
        user_id: int = 9
        action: str = H.BOOKED

    report = check_event(OldEvent(), [OldBooking()], [OldEntry()])
    assert report.confirmed == 1


def test_oversold_tickets_are_caught() -> None:
    rows = _valid()
    rows.event.capacity = 5
    _broken(rows, "oversold: 6 tickets of 5")


def test_tickets_lost_from_the_sum_are_caught() -> None:
    rows = _valid()
    rows.event.capacity, rows.event.available = 8, 1
    _broken(rows, r"6 confirmed \+ 0 offered \+ 1 available != 8")


def test_counter_drift_is_caught() -> None:
    for column, value, match in (
        ("offered_count", 1, "offered_count 1, offers hold 0"),
        ("waiting_count", 2, "waiting_count 2, 1 entries"),
        ("waiting_tickets", 4, "waiting_tickets 4, the line wants 1"),
    ):
        rows = _valid()
        setattr(rows.event, column, value)
        _broken(rows, match)


def test_a_first_party_that_fits_but_waits_is_caught() -> None:
    rows = _valid()
    rows.event.capacity, rows.event.available = 7, 1
    _broken(rows, r"1 free while the first entry \(line 2\) waits for 1")


def test_a_party_larger_than_the_event_waiting_is_caught() -> None:
    rows = _valid()
    cat = rows.booking(13)
    cat.quantity = 7
    rows.history[2].quantity = 7
    rows.event.waiting_tickets = 7
    _broken(rows, "a party of 7 waits for an event of 6 tickets")


def test_a_claim_of_no_tickets_is_caught() -> None:
    rows = _valid()
    rows.booking(13).quantity = 0
    _broken(rows, "a claim of no tickets")


def test_two_live_claims_of_one_user_are_caught() -> None:
    rows = _valid()
    rows.booking(13).user_id = 102
    for entry in rows.history:
        if entry.booking_id == 13:
            entry.user_id = 102
    _broken(rows, r"double claim by user \[102\]")


def test_a_live_status_without_the_live_mark_is_caught() -> None:
    rows = _valid()
    rows.booking(11).active = None
    _broken(rows, "booking 11 is confirmed with active=None")


def test_an_offer_without_deadline_is_caught() -> None:
    rows = _valid()
    rows.bookings[1].status = S.OFFERED
    rows.event.offered_count = 4
    _broken(rows, "offer without deadline")


def test_a_cancelled_event_still_holding_claims_is_caught() -> None:
    rows = _valid()
    rows.event.state = EventState.CANCELLED
    _broken(rows, "cancelled, yet claims are still held")


def test_a_promotion_out_of_line_order_is_caught() -> None:
    """Cat (line 2, party of 1) is served ahead of Ben (line 1, party of 4) with 3 free: the
    end state is valid (2 free < 4), only the history shows that Ben was passed."""
    rows = Rows(
        EventRow(1, capacity=6, available=2, offered_count=0, waiting_count=1, waiting_tickets=4),
        [
            BookingRow(11, 101, S.CONFIRMED, 3),
            BookingRow(12, 102, S.WAITLISTED, 4, line_seq=1),
            BookingRow(13, 103, S.CONFIRMED, 1, line_seq=2),
        ],
        [],
    )
    rows.add(11, H.BOOKED, 3)
    rows.add(12, H.WAITLISTED, 4)
    rows.add(13, H.WAITLISTED, 1)
    rows.add(13, H.PROMOTED, 1)
    _broken(rows, r"booking 13 promoted 1 \(history 4\) \(line 2\) ahead of line 1")


def test_part_of_a_party_promoted_is_caught() -> None:
    rows = _valid()
    rows.history[-1].quantity = 3
    _broken(rows, "booking 12 promoted 3 .* but it held 4: not the whole party")


def test_a_ticket_booked_while_a_party_waits_is_caught() -> None:
    rows = _valid()
    rows.event.capacity = 7
    rows.bookings.append(BookingRow(14, 104, S.CONFIRMED, 1))
    rows.add(14, H.BOOKED, 1)
    _broken(rows, r"booking 14 booked 1 \(history 6\) while line 2 waited")


def test_a_cancel_of_more_than_is_held_is_caught() -> None:
    rows = _valid()
    rows.history[3].quantity = 4
    _broken(rows, "booking 11 cancelled 4 .* but it held 3")


def test_a_quantity_that_disagrees_with_the_history_is_caught() -> None:
    rows = _valid()
    rows.booking(11).quantity = 3
    rows.event.capacity = 7
    _broken(rows, "booking 11 holds 3, its history says 2")


def test_a_change_missing_from_the_history_is_caught() -> None:
    rows = _valid()
    del rows.history[-1]
    _broken(rows, "booking 12 is confirmed, its history says waitlisted")


def test_tickets_transferred_but_not_received_are_caught() -> None:
    rows = _valid()
    giver = rows.booking(11)
    giver.status, giver.active = S.TRANSFERRED, None
    rows.bookings.append(BookingRow(14, 104, S.CONFIRMED, 1))
    rows.add(11, H.TRANSFERRED, 2)
    rows.add(14, H.RECEIVED, 1)  # one of the two tickets went nowhere
    rows.event.capacity = 5
    _broken(rows, "2 tickets given, 1 received")


def test_the_rows_are_not_changed_by_the_check() -> None:
    rows = _valid()
    before = copy.deepcopy(rows)
    rows.check()
    assert rows == before


async def test_events_made_through_the_api_pass(
    client: httpx.AsyncClient, database: Database
) -> None:
    people = {n: await register_and_login(client, n) for n in ("own", "ann", "ben", "cat")}
    event_id = await create_event(client, people["own"], tickets=1, waitlist_mode="offer")
    for name in ("ann", "ben", "cat"):
        assert (await book(client, people[name], event_id)).status_code in (201, 202)
    assert (await cancel(client, people["ann"], event_id)).status_code == 200  # Ben offered
    assert (await cancel(client, people["cat"], event_id)).status_code == 200  # Cat leaves
    report = (await check_invariants(database.url, [event_id]))[event_id]
    assert (report.offered, report.waiting, report.available) == (1, 0, 0)
    findings = await find_invariant_breaks(database.url, [event_id, event_id + 1000])
    assert set(findings.reports) == {event_id}
    assert findings.breaks == {event_id + 1000: f"event {event_id + 1000} does not exist"}
