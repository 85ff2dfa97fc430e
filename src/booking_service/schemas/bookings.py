from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from booking_service.schemas.common import REQUEST_CONFIG, EventId, Message


class BookingRequest(BaseModel):
    model_config = REQUEST_CONFIG

    event_id: EventId = Field(alias="eventId")


class BookingConfirmed(BaseModel):
    message: str = Field(description="Confirmation.", examples=[Message.BOOKED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    booking_id: int = Field(
        serialization_alias="bookingId", description="Your booking's id.", examples=[42]
    )
    status: Literal["confirmed"] = Field(description="You hold a ticket.")


class BookingWaitlisted(BaseModel):
    message: str = Field(description="Confirmation.", examples=[Message.WAITLISTED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    booking_id: int = Field(
        serialization_alias="bookingId", description="Your place's id.", examples=[43]
    )
    status: Literal["waitlisted"] = Field(description="You hold a place in line.")
    position: int = Field(description="Your 1-based place in line.", examples=[1])


class CancelResult(BaseModel):
    message: str = Field(description="What happened.", examples=[Message.CANCELLED_RELEASED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    outcome: Literal["reassigned", "released", "left_waiting_list"] = Field(
        description=(
            "`reassigned`: your ticket went to the first person in line; `released`: it went "
            "back to the pool; `left_waiting_list`: you gave up your place in line."
        )
    )


class MyBooking(BaseModel):
    booking_id: int = Field(
        serialization_alias="bookingId", description="The booking's id.", examples=[42]
    )
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    event_name: str = Field(description="The event's name.", examples=["Concert 2025"])
    status: Literal["confirmed", "waitlisted"] = Field(
        description="`confirmed`: you hold a ticket; `waitlisted`: you hold a place in line."
    )
    position: int | None = Field(
        default=None, description="Your 1-based place in line, when waitlisted.", examples=[None]
    )
    created_at: datetime = Field(description="When you booked or joined the line (UTC).")
    confirmed_at: datetime | None = Field(
        default=None, description="When you got the ticket (UTC), when confirmed."
    )
    promoted_at: datetime | None = Field(
        default=None, description="When you got it from the waiting list (UTC), if you did."
    )


class MyBookings(BaseModel):
    items: list[MyBooking] = Field(description="Your tickets and places in line, newest first.")
