"""The answer checker the client tests rely on finds each kind of drift from the document."""

from __future__ import annotations

import json

import pytest

from tests.contract import Answer, Contract

WAITLISTED = {
    "message": "No tickets available, you are added to waiting list",
    "eventId": 1,
    "bookingId": 43,
    "status": "waitlisted",
    "position": 1,
    "quantity": 1,
}
NOT_FOUND = {"message": "Event not found", "code": "event_not_found", "details": None}


def answer(method: str, path: str, status: int, body: object, media: str = "") -> Answer:
    text = body if isinstance(body, str) else json.dumps(body)
    return Answer(method, path, status, media or "application/json", text)


def test_documented_answers_pass(contract: Contract) -> None:
    contract.check(
        [
            answer("POST", "/book", 202, WAITLISTED),
            answer("POST", "/book", 404, NOT_FOUND),
            answer("GET", "/metrics", 200, "# HELP x\n", "text/plain; version=1.0.0"),
            Answer("DELETE", "/me", 204, "", ""),
        ]
    )


@pytest.mark.parametrize(
    ("drifted", "problem"),
    [
        (answer("POST", "/book", 418, WAITLISTED), "status not documented"),
        (answer("POST", "/nowhere", 200, {}), "no operation in the document"),
        (answer("POST", "/book", 202, {**WAITLISTED, "position": "1"}), "is not of type"),
        (answer("POST", "/book", 202, {**WAITLISTED, "seat": "A1"}), "'seat' was unexpected"),
        (answer("POST", "/book", 201, WAITLISTED), "'confirmed' was expected"),
        (answer("POST", "/book", 404, {**NOT_FOUND, "code": "gone"}), "'gone' is not among"),
        (answer("GET", "/me/bookings", 200, {"items": [{}]}), "is a required property"),
        (answer("GET", "/health", 200, "ok", "text/plain"), "text/plain content"),
        (Answer("DELETE", "/me", 204, "application/json", "{}"), "documented without a body"),
    ],
)
def test_each_kind_of_drift_is_named(contract: Contract, drifted: Answer, problem: str) -> None:
    problems = contract.problems(drifted)
    assert any(problem in found for found in problems), problems
    with pytest.raises(AssertionError, match="answers the document does not describe"):
        contract.check([drifted])


def test_dates_are_checked_as_dates(contract: Contract) -> None:
    body = {
        "items": [
            {
                "bookingId": 42,
                "eventId": 1,
                "event_name": "Concert 2025",
                "status": "confirmed",
                "quantity": 1,
                "position": None,
                "created_at": "yesterday",
                "confirmed_at": None,
                "promoted_at": None,
                "offer_expires_at": None,
                "checked_in_at": None,
                "ticket_code": "2WUnCGv3YD1VjkdBw1KZNd9vlzHvi7wHmOYHf8zOeTQ",
            }
        ]
    }
    [problem] = contract.problems(answer("GET", "/me/bookings", 200, body))
    assert "items/0/created_at: 'yesterday' is not a 'date-time'" in problem


def test_unseen_successes_name_operation_and_status(contract: Contract) -> None:
    unseen = contract.unseen_successes([answer("POST", "/book", 202, WAITLISTED)])
    assert "book_ticket 201" in unseen
    assert "book_ticket 202" not in unseen
    assert "close_account 204" in unseen
