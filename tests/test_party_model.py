"""The party model (tests/party_model.py) against the rules of issue 16, one rule at a time.

The model is the oracle of the model-based test, so it is tested on its own first: each rule
and each edge case the issue names, with the answers spelled out.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.party_model import (
    CANCELLED_OFFERED,
    CANCELLED_REASSIGNED,
    CANCELLED_RELEASED,
    LEFT_LINE,
    Answer,
    Mode,
    PartyModel,
    mismatches,
)

OWNER = "owner"


def _model(*users: str) -> PartyModel:
    model = PartyModel()
    for user in (OWNER, *users):
        model.register(user)
    return model


def _event(model: PartyModel, tickets: int, **fields: Any) -> int:
    answer = model.create_event(OWNER, "Gig", tickets, **fields)
    assert answer.status == 201, answer
    event_id: int = answer.body["eventId"]
    return event_id


def _ok(answer: Answer, status: int = 200) -> Answer:
    assert answer.status == status, answer
    return answer


def _refused(answer: Answer, status: int, code: str) -> Answer:
    assert (answer.status, answer.code) == (status, code), answer
    return answer


def _counts(model: PartyModel, event_id: int) -> tuple[int, int, int, int, int, int]:
    """(booked, available, offered, waiting entries, waiting tickets, first in line needs)."""
    c = model.events[event_id].counts()
    return (
        c["total_ticket_booked"],
        c["available_tickets"],
        c["offered_tickets"],
        c["waiting_list_count"],
        c["waiting_list_tickets"],
        c["first_in_line_needs"],
    )


def _statuses(model: PartyModel, user: str) -> list[tuple[str, int, int | None]]:
    return [(i["status"], i["quantity"], i["position"]) for i in model.my_bookings(user)]


def test_a_party_that_fits_is_booked_whole() -> None:
    model = _model("ann")
    event_id = _event(model, 5, max_per_user=4)
    answer = _ok(model.book("ann", event_id, 3), 201)
    assert answer.body == {
        "message": "Ticket booked",
        "eventId": event_id,
        "bookingId": answer.body["bookingId"],
        "status": "confirmed",
        "quantity": 3,
    }
    assert _counts(model, event_id) == (3, 2, 0, 0, 0, 0)
    model.check()


def test_quantity_defaults_to_one_and_max_per_user_to_one() -> None:
    model = _model("ann", "ben")
    event_id = _event(model, 5)
    assert _ok(model.book("ann", event_id), 201).body["quantity"] == 1
    refused = _refused(model.book("ben", event_id, 2), 422, "validation_error")
    assert refused.message == "quantity must be at most 1 for this event"
    assert _counts(model, event_id) == (1, 4, 0, 0, 0, 0)


def test_refusals_come_in_the_fixed_order() -> None:
    model = _model("ann", "ben")
    event_id = _event(model, 3, max_per_user=5)
    _ok(model.book("ann", event_id, 1), 201)
    # A live claim is refused before its quantity is looked at.
    _refused(model.book("ann", event_id, 9), 409, "already_booked")
    # Above max_per_user (422) before above the capacity (409).
    model.events[event_id].max_per_user = 2
    _refused(model.book("ben", event_id, 3), 422, "validation_error")
    model.events[event_id].max_per_user = 5
    too_large = _refused(model.book("ben", event_id, 4), 409, "party_too_large")
    assert too_large.message == "A party of 4 cannot fit: the event has 3 tickets"
    # The event's state before the claim and quantity checks.
    _ok(model.close_event(OWNER, event_id))
    _refused(model.book("ann", event_id, 9), 409, "event_closed")
    model.close_account("ben")
    _refused(model.book("ben", event_id, 1), 401, "invalid_token")
    _refused(model.book("ann", 999, 1), 404, "event_not_found")
    _refused(model.book("ann", event_id, 0), 422, "validation_error")


def test_a_party_larger_than_capacity_is_refused_at_once_rather_than_waiting_forever() -> None:
    model = _model("ann")
    event_id = _event(model, 2, max_per_user=4)
    _refused(model.book("ann", event_id, 3), 409, "party_too_large")
    assert model.my_bookings("ann") == []
    assert _counts(model, event_id) == (0, 2, 0, 0, 0, 0)


def test_a_party_that_does_not_fit_joins_the_line_as_one_entry() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 3), 201)
    first = _ok(model.book("ben", event_id, 2), 202)
    assert first.body["position"] == 1
    assert first.body["message"] == "No tickets available, you are added to waiting list"
    second = _ok(model.book("cat", event_id, 3), 202)
    assert second.body["position"] == 2  # places count entries, not tickets
    assert _counts(model, event_id) == (3, 1, 0, 2, 5, 1)
    model.check()


def test_a_newcomer_never_passes_the_line_even_with_tickets_free() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 2), 201)
    _ok(model.book("ben", event_id, 3), 202)  # 2 free, Ben's party needs 3
    # One ticket would do for Cat, and two are free: Cat still queues behind Ben.
    assert _ok(model.book("cat", event_id, 1), 202).body["position"] == 2
    assert _counts(model, event_id) == (2, 2, 0, 2, 4, 1)
    model.check()


def test_freed_tickets_go_to_the_first_entry_once_its_whole_party_fits() -> None:
    model = _model("ann", "ben", "cat", "dan")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 1), 201)
    _ok(model.book("ben", event_id, 2), 201)
    _ok(model.book("cat", event_id, 3), 202)  # 1 free, needs 3
    _ok(model.book("dan", event_id, 1), 202)
    # One ticket back: 2 free, still short of Cat's 3, and Dan behind her waits too.
    cancelled = _ok(model.cancel("ann", event_id))
    assert cancelled.body["outcome"] == "released"
    assert cancelled.body["message"] == CANCELLED_RELEASED
    assert _counts(model, event_id) == (2, 2, 0, 2, 4, 1)
    # Two more back: Cat's party is booked whole, then Dan, who now fits.
    cancelled = _ok(model.cancel("ben", event_id))
    assert (cancelled.body["outcome"], cancelled.body["message"]) == (
        "reassigned",
        CANCELLED_REASSIGNED,
    )
    assert _statuses(model, "cat") == [("confirmed", 3, None)]
    assert _statuses(model, "dan") == [("confirmed", 1, None)]
    assert _counts(model, event_id) == (4, 0, 0, 0, 0, 0)
    model.check()


def test_the_line_stops_at_the_first_entry_that_does_not_fit() -> None:
    model = _model("ann", "ben", "cat", "dan")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 4), 201)
    _ok(model.book("ben", event_id, 1), 202)
    _ok(model.book("cat", event_id, 4), 202)
    _ok(model.book("dan", event_id, 1), 202)
    _ok(model.cancel("ann", event_id, 2))  # 2 free: Ben served, Cat needs 4, Dan waits
    assert _statuses(model, "ben") == [("confirmed", 1, None)]
    assert _statuses(model, "cat") == [("waitlisted", 4, 1)]
    assert _statuses(model, "dan") == [("waitlisted", 1, 2)]
    assert _counts(model, event_id) == (3, 1, 0, 2, 5, 3)
    model.check()


def test_a_partial_cancel_keeps_the_rest_of_the_booking() -> None:
    model = _model("ann")
    event_id = _event(model, 5, max_per_user=4)
    booked = _ok(model.book("ann", event_id, 4), 201)
    answer = _ok(model.cancel("ann", event_id, 1))
    assert answer.body == {
        "eventId": event_id,
        "message": CANCELLED_RELEASED,
        "outcome": "released",
        "quantity": 3,
    }
    assert answer.maybe["released_tickets"] == 1
    [item] = model.my_bookings("ann")
    assert (item["bookingId"], item["quantity"]) == (booked.body["bookingId"], 3)
    # All of what is left is a whole cancel; more than that is refused.
    refused = _refused(model.cancel("ann", event_id, 4), 422, "validation_error")
    assert refused.message == "quantity must be at most 3: that is what you hold"
    assert _ok(model.cancel("ann", event_id, 3)).body["outcome"] == "released"
    assert model.my_bookings("ann") == []
    assert _counts(model, event_id) == (0, 5, 0, 0, 0, 0)


def test_a_partial_cancel_by_the_last_holder_serves_the_first_entry() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 4), 201)  # the last (only) holder
    _ok(model.book("ben", event_id, 3), 202)
    _ok(model.book("cat", event_id, 1), 202)
    # Two back: 2 free, Ben needs 3; nobody is served, Cat must not jump ahead.
    assert _ok(model.cancel("ann", event_id, 2)).body["outcome"] == "released"
    assert _counts(model, event_id) == (2, 2, 0, 2, 4, 1)
    # One more: Ben's 3 fit; Cat still waits, with nothing free.
    answer = _ok(model.cancel("ann", event_id, 1))
    assert (answer.body["outcome"], answer.body["quantity"]) == ("reassigned", 1)
    assert _statuses(model, "ben") == [("confirmed", 3, None)]
    assert _statuses(model, "cat") == [("waitlisted", 1, 1)]
    assert _counts(model, event_id) == (4, 0, 0, 1, 1, 1)
    model.check()


def test_a_place_in_line_can_want_fewer_and_keeps_its_place() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 2), 201)
    _ok(model.book("ben", event_id, 4), 202)
    _ok(model.book("cat", event_id, 1), 202)
    answer = _ok(model.cancel("ben", event_id, 1))  # wants 3 now, 2 free: still waits
    assert answer.body == {"eventId": event_id, "quantity": 3}
    assert {"message", "outcome"} <= answer.unchecked
    assert _statuses(model, "ben") == [("waitlisted", 3, 1)]
    assert _counts(model, event_id) == (2, 2, 0, 2, 4, 1)
    # Wanting one fewer again makes it fit: served at once, and Cat right after.
    _ok(model.cancel("ben", event_id, 1))
    assert _statuses(model, "ben") == [("confirmed", 2, None)]
    assert _statuses(model, "cat") == [("waitlisted", 1, 1)]
    assert _counts(model, event_id) == (4, 0, 0, 1, 1, 1)
    model.check()


def test_leaving_the_line_lets_a_smaller_party_behind_fit() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 2), 201)
    _ok(model.book("ben", event_id, 4), 202)
    _ok(model.book("cat", event_id, 2), 202)
    left = _ok(model.cancel("ben", event_id))
    assert (left.body["message"], left.body["outcome"]) == (LEFT_LINE, "left_waiting_list")
    assert _statuses(model, "cat") == [("confirmed", 2, None)]
    assert _counts(model, event_id) == (4, 0, 0, 0, 0, 0)
    model.check()


def test_offer_mode_offers_the_whole_party_with_one_deadline() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 4, max_per_user=4, mode=Mode.OFFER, offer_seconds=60)
    _ok(model.book("ann", event_id, 3), 201)
    _ok(model.book("ben", event_id, 3), 202)
    _ok(model.book("cat", event_id, 1), 202)
    answer = _ok(model.cancel("ann", event_id, 2))  # 3 free: Ben offered 3, Cat waits
    assert (answer.body["outcome"], answer.body["message"]) == ("offered", CANCELLED_OFFERED)
    assert _statuses(model, "ben") == [("offered", 3, None)]
    assert model.events[event_id].claims["ben"].offer_expires_at == 60
    assert _counts(model, event_id) == (1, 0, 3, 1, 1, 1)
    # An offer is all or nothing: no part of it can be given back.
    _refused(model.cancel("ben", event_id, 1), 409, "offer_all_or_nothing")
    accepted = _ok(model.accept("ben", event_id))
    assert accepted.body["status"] == "confirmed"
    assert accepted.maybe["quantity"] == 3
    assert _counts(model, event_id) == (4, 0, 0, 1, 1, 1)
    model.check()


def test_a_declined_party_offer_passes_on_under_the_line_rule() -> None:
    model = _model("ann", "ben", "cat", "dan")
    event_id = _event(model, 4, max_per_user=4, mode=Mode.OFFER)
    _ok(model.book("ann", event_id, 4), 201)
    _ok(model.book("ben", event_id, 4), 202)
    _ok(model.book("cat", event_id, 2), 202)
    _ok(model.book("dan", event_id, 2), 202)
    _ok(model.cancel("ann", event_id))
    assert _statuses(model, "ben") == [("offered", 4, None)]
    assert _ok(model.decline("ben", event_id)).body == {
        "message": "Offer declined",
        "eventId": event_id,
    }
    # Four back: Cat and Dan are both offered theirs, in line order.
    assert _statuses(model, "cat") == [("offered", 2, None)]
    assert _statuses(model, "dan") == [("offered", 2, None)]
    assert _counts(model, event_id) == (0, 0, 4, 0, 0, 0)
    _refused(model.accept("ben", event_id), 404, "offer_not_found")
    model.check()


def test_a_lapsed_party_offer_is_refused_then_passed_on() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 3, max_per_user=3, mode=Mode.OFFER, offer_seconds=60)
    _ok(model.book("ann", event_id, 3), 201)
    _ok(model.book("ben", event_id, 2), 202)
    _ok(model.book("cat", event_id, 3), 202)
    _ok(model.cancel("ann", event_id))  # 3 free: Ben offered 2, 1 free, Cat needs 3
    assert _counts(model, event_id) == (0, 1, 2, 1, 3, 2)
    model.advance(59)
    assert model.sweep() == 0
    model.advance(1)  # the deadline itself is too late
    _refused(model.accept("ben", event_id), 410, "offer_expired")
    # Its 2 tickets went on: with the free one, Cat's 3 fit.
    assert _statuses(model, "cat") == [("offered", 3, None)]
    _refused(model.decline("ben", event_id), 410, "offer_expired")
    model.advance(60)
    assert model.sweep() == 1
    assert _counts(model, event_id) == (0, 3, 0, 0, 0, 0)
    model.check()


def test_more_tickets_serve_the_line_and_fewer_are_refused_below_held_or_a_party() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 4, max_per_user=4)
    _ok(model.book("ann", event_id, 3), 201)
    _ok(model.book("ben", event_id, 3), 202)
    _ok(model.book("cat", event_id, 2), 202)
    grown = _ok(model.update_event(OWNER, event_id, tickets=6))  # 3 free: Ben, not Cat
    assert grown.partial
    assert (grown.body["capacity"], grown.body["waiting_list_count"]) == (6, 1)
    assert _statuses(model, "ben") == [("confirmed", 3, None)]
    below_held = _refused(
        model.update_event(OWNER, event_id, tickets=5), 409, "capacity_below_held"
    )
    assert below_held.message == "Tickets cannot go below the 6 already confirmed or offered"
    _ok(model.update_event(OWNER, event_id, tickets=8))  # 2 more: Cat fits
    assert _statuses(model, "cat") == [("confirmed", 2, None)]
    model.check()


def test_a_party_at_the_head_while_capacity_shrinks() -> None:
    model = _model("ann", "ben")
    event_id = _event(model, 6, max_per_user=5)
    _ok(model.book("ann", event_id, 2), 201)
    _ok(model.book("ben", event_id, 5), 202)  # 4 free, needs 5
    shrunk = _ok(model.update_event(OWNER, event_id, tickets=5))
    assert (shrunk.body["available_tickets"], shrunk.body["first_in_line_needs"]) == (3, 2)
    # Below 5 Ben's party could never fit: refused, though above the 2 held.
    _refused(model.update_event(OWNER, event_id, tickets=4), 409, "capacity_below_party")
    assert model.events[event_id].capacity == 5
    # Below what is held, that refusal comes first.
    _refused(model.update_event(OWNER, event_id, tickets=1), 409, "capacity_below_held")
    # Once Ann gives back her 2, Ben's 5 fit.
    _ok(model.cancel("ann", event_id))
    assert _statuses(model, "ben") == [("confirmed", 5, None)]
    model.check()


def test_max_per_user_is_bounded_and_lowering_it_keeps_bookings() -> None:
    model = _model("ann", "ben")
    _refused(model.create_event(OWNER, "Gig", 5, max_per_user=11), 422, "validation_error")
    event_id = _event(model, 5, max_per_user=4)
    _ok(model.book("ann", event_id, 4), 201)
    _ok(model.update_event(OWNER, event_id, max_per_user=2))
    assert _statuses(model, "ann") == [("confirmed", 4, None)]
    _refused(model.book("ben", event_id, 3), 422, "validation_error")
    _refused(model.update_event(OWNER, event_id, max_per_user=11), 422, "validation_error")
    _refused(model.update_event("ann", event_id, max_per_user=3), 403, "not_event_owner")


def test_a_closed_event_takes_no_newcomers_but_its_line_carries_on() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 3, max_per_user=3)
    _ok(model.book("ann", event_id, 3), 201)
    _ok(model.book("ben", event_id, 2), 202)
    _ok(model.close_event(OWNER, event_id))
    _refused(model.book("cat", event_id, 1), 409, "event_closed")
    assert _ok(model.cancel("ann", event_id)).body["outcome"] == "reassigned"
    assert _statuses(model, "ben") == [("confirmed", 2, None)]
    _refused(model.book("cat", event_id, 1), 409, "event_closed")  # free, but closed
    _ok(model.close_event(OWNER, event_id))  # closing again changes nothing


def test_cancelling_the_event_releases_every_claim_with_its_quantity() -> None:
    model = _model("ann", "ben", "cat", "dan")
    event_id = _event(model, 5, max_per_user=4, mode=Mode.OFFER)
    _ok(model.book("ann", event_id, 2), 201)
    _ok(model.book("ben", event_id, 3), 201)
    _ok(model.book("cat", event_id, 2), 202)
    _ok(model.book("dan", event_id, 4), 202)
    _ok(model.cancel("ann", event_id))  # Cat offered 2
    answer = _ok(model.cancel_event(OWNER, event_id))
    assert answer.body == {
        "message": "Event cancelled",
        "eventId": event_id,
        "released_tickets": 3,
        "released_places": 1,
    }
    assert "released_offers" in answer.unchecked
    assert _counts(model, event_id) == (0, 5, 0, 0, 0, 0)
    _refused(model.book("ann", event_id, 1), 409, "event_cancelled")
    _refused(model.accept("cat", event_id), 409, "event_cancelled")
    _refused(model.cancel("ben", event_id), 404, "booking_not_found")
    _refused(model.update_event(OWNER, event_id, tickets=9), 409, "event_cancelled")
    again = _ok(model.cancel_event(OWNER, event_id))
    assert (again.body["released_tickets"], again.body["released_places"]) == (0, 0)
    model.check()


def test_closing_an_account_gives_its_tickets_to_the_line() -> None:
    model = _model("ann", "ben", "cat")
    first = _event(model, 2, max_per_user=2)
    second = _event(model, 2, max_per_user=2)
    _ok(model.book("ann", first, 2), 201)
    _ok(model.book("ann", second, 1), 201)
    _ok(model.book("ben", first, 2), 202)
    _ok(model.book("cat", second, 2), 202)
    assert model.close_account("ann").status == 204
    assert _statuses(model, "ben") == [("confirmed", 2, None)]
    assert _statuses(model, "cat") == [("confirmed", 2, None)]
    _refused(model.book("ann", first, 1), 401, "invalid_token")
    _refused(model.cancel("ann", first), 401, "invalid_token")
    model.check()


def test_status_counts_tickets_and_entries() -> None:
    model = _model("ann", "ben", "cat")
    event_id = _event(model, 5, max_per_user=4)
    _ok(model.book("ann", event_id, 3), 201)
    _ok(model.book("ben", event_id, 4), 202)
    _ok(model.book("cat", event_id, 2), 202)
    assert model.status(event_id) == {
        "event_name": "Gig",
        "total_ticket_booked": 3,
        "available_tickets": 2,
        "offered_tickets": 0,
        "waiting_list_count": 2,
        "waiting_list_tickets": 6,
        "first_in_line_needs": 2,
        "state": "open",
        "sales_start": None,
        "sales_end": None,
        "checked_in_tickets": 0,
    }


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (201, {"message": "Ticket booked", "eventId": 1, "bookingId": 7}, "missing 'quantity'"),
        (201, {"eventId": 1, "bookingId": 7, "quantity": 2, "x": 1}, "unexpected fields"),
        (202, {}, "status 202"),
        (201, {"eventId": 1, "bookingId": 7, "quantity": 3}, "quantity = 3"),
    ],
)
def test_mismatches_name_what_differs(status: int, body: dict[str, Any], problem: str) -> None:
    expected = Answer(
        201, {"eventId": 1, "bookingId": 7, "quantity": 2}, unchecked=frozenset({"message"})
    )
    assert any(problem in p for p in mismatches(expected, status, body)), mismatches(
        expected, status, body
    )
    assert mismatches(expected, 201, {"eventId": 1, "bookingId": 7, "quantity": 2}) == []


def test_mismatches_of_errors_read_the_code_and_the_message_or_its_details() -> None:
    expected = Answer(422, code="validation_error", message="quantity must be at most 2")
    detail = {"loc": ["body", "quantity"], "msg": "quantity must be at most 2", "type": "x"}
    body = {"message": "Request validation failed", "code": "validation_error"}
    assert mismatches(expected, 422, {**body, "details": [detail]}) == []
    assert mismatches(expected, 422, body) != []
    assert mismatches(expected, 409, body) != []
    assert mismatches(expected, 422, {**body, "code": "other", "details": [detail]}) != []
