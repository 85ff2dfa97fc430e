from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from booking_service.schemas.common import (
    EXAMPLE_TIME,
    REQUEST_CONFIG,
    RESPONSE_CONFIG,
    EventId,
    Message,
)


class BookingRequest(BaseModel):
    """The event to book or cancel."""

    model_config = REQUEST_CONFIG

    event_id: EventId = Field(alias="eventId")


class BookingConfirmed(BaseModel):
    """You hold a ticket."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.BOOKED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    booking_id: int = Field(
        serialization_alias="bookingId", description="Your booking's id.", examples=[42]
    )
    status: Literal["confirmed"] = Field(description="You hold a ticket.", examples=["confirmed"])


class BookingWaitlisted(BaseModel):
    """The event is sold out: you hold a place in its waiting list."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.WAITLISTED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    booking_id: int = Field(
        serialization_alias="bookingId", description="Your place's id.", examples=[43]
    )
    status: Literal["waitlisted"] = Field(
        description="You hold a place in line.", examples=["waitlisted"]
    )
    position: int = Field(description="Your 1-based place in line.", examples=[1])


class CancelResult(BaseModel):
    """Your ticket or place in line is given up."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="What happened.", examples=[Message.CANCELLED_RELEASED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    outcome: Literal["reassigned", "released", "left_waiting_list"] = Field(
        description=(
            "`reassigned`: your ticket went to the first person in line; `released`: it went "
            "back to the pool; `left_waiting_list`: you gave up your place in line."
        ),
        examples=["released"],
    )


EXAMPLE_MY_BOOKING = {
    "bookingId": 42,
    "eventId": 1,
    "event_name": "Concert 2025",
    "status": "confirmed",
    "position": None,
    "created_at": EXAMPLE_TIME,
    "confirmed_at": EXAMPLE_TIME,
    "promoted_at": None,
}


class MyBooking(BaseModel):
    """One of your tickets or places in line."""

    model_config = RESPONSE_CONFIG

    booking_id: int = Field(
        serialization_alias="bookingId", description="The booking's id.", examples=[42]
    )
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    event_name: str = Field(description="The event's name.", examples=["Concert 2025"])
    status: Literal["confirmed", "waitlisted"] = Field(
        description="`confirmed`: you hold a ticket; `waitlisted`: you hold a place in line.",
        examples=["confirmed"],
    )
    position: int | None = Field(
        default=None,
        description="Your 1-based place in line when waitlisted; null when confirmed.",
        examples=[3],
    )
    created_at: datetime = Field(
        description="When you booked or joined the line (UTC).", examples=[EXAMPLE_TIME]
    )
    confirmed_at: datetime | None = Field(
        default=None,
        description="When you got the ticket (UTC); null while waitlisted.",
        examples=[EXAMPLE_TIME],
    )
    promoted_at: datetime | None = Field(
        default=None,
        description="When you got it from the waiting list (UTC); null if you never waited.",
        examples=[None],
    )


class MyBookings(BaseModel):
    """Your tickets and places in line."""

    model_config = RESPONSE_CONFIG

    items: list[MyBooking] = Field(
        description="Your tickets and places in line, newest first.",
        examples=[[EXAMPLE_MY_BOOKING]],
    )
