"""Tickets once bought: moved to another holder, checked in at the door."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from booking_service.schemas.auth import Username
from booking_service.schemas.common import (
    EXAMPLE_TIME,
    REQUEST_CONFIG,
    RESPONSE_CONFIG,
    EventId,
    Message,
)
from booking_service.ticket_codes import CODE_PATTERN

EXAMPLE_CODE = "2WUnCGv3YD1VjkdBw1KZNd9vlzHvi7wHmOYHf8zOeTQ"

TicketCode = Annotated[
    str,
    Field(
        pattern=CODE_PATTERN,
        description="A ticket code as its holder sees it in `GET /me/bookings`: 43 URL-safe "
        "characters.",
        examples=[EXAMPLE_CODE],
    ),
]


class TransferRequest(BaseModel):
    """Your confirmed ticket for this event, to move to another user."""

    model_config = REQUEST_CONFIG

    event_id: EventId = Field(alias="eventId")
    to_username: Username = Field(alias="toUsername")


class TransferResult(BaseModel):
    """The ticket now belongs to the recipient, under a new booking and a new code."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.TRANSFERRED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    booking_id: int = Field(
        serialization_alias="bookingId",
        description="The recipient's new booking, which holds the ticket now.",
        examples=[57],
    )
    to_user_id: int = Field(
        serialization_alias="toUserId", description="The new holder's id.", examples=[8]
    )
    to_username: str = Field(
        serialization_alias="toUsername", description="The new holder.", examples=["friend42"]
    )
    quantity: int = Field(description="Tickets moved: the whole booking.", examples=[1])
    transferred_at: datetime = Field(description="When it moved (UTC).", examples=[EXAMPLE_TIME])


class CheckInRequest(BaseModel):
    """The code shown at the door."""

    model_config = REQUEST_CONFIG

    code: TicketCode


class CheckInResult(BaseModel):
    """The ticket is checked in."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.CHECKED_IN])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    booking_id: int = Field(
        serialization_alias="bookingId", description="The ticket's booking.", examples=[42]
    )
    user_id: int = Field(serialization_alias="userId", description="Its holder.", examples=[8])
    username: str = Field(description="Its holder's username.", examples=["user123"])
    quantity: int = Field(description="Tickets admitted: the whole booking.", examples=[1])
    checked_in_at: datetime = Field(description="When (UTC).", examples=[EXAMPLE_TIME])
