from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from booking_service.schemas.common import EXAMPLE_TIME, RESPONSE_CONFIG

HistoryActionName = Literal[
    "booked",
    "waitlisted",
    "promoted",
    "offered",
    "accepted",
    "declined",
    "expired",
    "left",
    "cancelled",
    "event_cancelled",
    "transferred",
    "received",
    "checked_in",
]

EXAMPLE_HISTORY_ENTRY = {
    "historyId": 17,
    "bookingId": 42,
    "eventId": 1,
    "event_name": "Concert 2025",
    "userId": 7,
    "username": "user123",
    "action": "booked",
    "quantity": 1,
    "created_at": EXAMPLE_TIME,
}


class HistoryEntry(BaseModel):
    """One change of one ticket or place in line."""

    model_config = RESPONSE_CONFIG

    history_id: int = Field(
        validation_alias="id",
        serialization_alias="historyId",
        description="The entry's id; ids grow in the order the changes of an event happened.",
        examples=[17],
    )
    booking_id: int = Field(
        serialization_alias="bookingId", description="The booking changed.", examples=[42]
    )
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    event_name: str = Field(description="The event's name.", examples=["Concert 2025"])
    user_id: int = Field(
        serialization_alias="userId", description="The booking's holder.", examples=[7]
    )
    username: str = Field(description="The holder's username.", examples=["user123"])
    action: HistoryActionName = Field(
        description=(
            "`booked`: got a ticket; `waitlisted`: joined the line; `promoted`: got a freed "
            "ticket from the line; `offered`: was offered a freed ticket; `accepted`, "
            "`declined`, `expired`: what became of the offer; `left`: left the line; "
            "`cancelled`: gave the ticket back; `event_cancelled`: released because the "
            "organizer cancelled the event; `transferred`: gave the ticket to another user; "
            "`received`: got a ticket from another user; `checked_in`: the ticket was checked "
            "in at the door."
        ),
        examples=["booked"],
    )
    quantity: int = Field(
        description=(
            "Tickets the change concerns: the booking's, or those given up by a partial "
            "`cancelled` or `left` (the booking keeps the rest)."
        ),
        examples=[1],
    )
    created_at: datetime = Field(description="When it happened (UTC).", examples=[EXAMPLE_TIME])


class HistoryPage(BaseModel):
    """One page of history, newest first."""

    model_config = RESPONSE_CONFIG

    items: list[HistoryEntry] = Field(
        description="Entries, newest first.", examples=[[EXAMPLE_HISTORY_ENTRY]]
    )
    total: int = Field(description="Entries in all.", examples=[1])
    limit: int = Field(description="Page size asked for.", examples=[20])
    offset: int = Field(description="Entries skipped before this page.", examples=[0])
