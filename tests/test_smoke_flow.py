"""The original service's whole flow, on both databases."""

from __future__ import annotations

import httpx

from tests.support.api import create_event, register_and_login


async def test_register_login_book_cancel_status(client: httpx.AsyncClient) -> None:
    alice = await register_and_login(client, "alice")
    bob = await register_and_login(client, "bob")
    event_id = await create_event(client, alice, tickets=1, name="Concert 2025")

    booked = await client.post("/book", json={"eventId": event_id}, headers=alice)
    assert booked.status_code == 201
    assert booked.json()["message"] == "Ticket booked"

    waiting = await client.post("/book", json={"eventId": event_id}, headers=bob)
    assert waiting.status_code == 202
    assert waiting.json()["message"] == "No tickets available, you are added to waiting list"
    assert waiting.json()["position"] == 1

    cancelled = await client.post("/cancel", json={"eventId": event_id}, headers=alice)
    assert cancelled.status_code == 200
    assert cancelled.json()["message"] == (
        "Booking canceled, ticket assigned to another user on the waiting list"
    )

    status = await client.get(f"/status/{event_id}", headers=alice)
    assert status.json() == {
        "event_name": "Concert 2025",
        "available_tickets": 0,
        "total_ticket_booked": 1,
        "waiting_list_count": 0,
        "waiting_list_tickets": 0,
        "first_in_line_needs": 0,
        "offered_tickets": 0,
        "state": "open",
        "sales_start": None,
        "sales_end": None,
        "checked_in_tickets": 0,
    }
    mine = (await client.get("/me/bookings", headers=bob)).json()["items"]
    assert [(b["eventId"], b["status"]) for b in mine] == [(event_id, "confirmed")]
    assert mine[0]["promoted_at"] is not None
