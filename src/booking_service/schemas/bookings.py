from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from booking_service.schemas.common import (
    EXAMPLE_TIME,
    REQUEST_CONFIG,
    RESPONSE_CONFIG,
    EventId,
    Message,
    json_integer,
)

LiveStatus = Literal["confirmed", "offered", "waitlisted"]
LIVE_STATUS_DESCRIPTION = (
    "`confirmed`: holds a ticket; `offered`: a freed ticket is held for them until "
    "`offer_expires_at` (accept or decline it); `waitlisted`: holds a place in line."
)


# The hard bound; an event's own `max_per_user` (at most MAX_PER_USER_LIMIT) is checked when
# booking, with its value named in the 422.
MAX_QUANTITY = 1000


class BookingRequest(BaseModel):
    """The event to answer an offer for."""

    model_config = REQUEST_CONFIG

    event_id: EventId = Field(alias="eventId")


class _PartyRequest(BookingRequest):
    quantity: int | None

    @model_serializer(mode="wrap")
    def _without_default_quantity(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The dump an idempotency key's digest is made of: without the default quantity, a
        # one-ticket request is the same request, with the same digest, as before parties.
        data = handler(self)
        if self.quantity == type(self).model_fields["quantity"].default:
            data.pop("quantity", None)
        return data


class BookRequest(_PartyRequest):
    """The event to book, and how many tickets (a party: all or nothing)."""

    quantity: Annotated[int, BeforeValidator(json_integer)] = Field(
        default=1,
        strict=True,
        ge=1,
        le=MAX_QUANTITY,
        description=(
            "Tickets wanted, all or nothing, at most the event's `max_per_user` (422 naming it "
            "above that; 409 `party_too_large` above its capacity). Places in line count "
            "entries: the whole party waits as one."
        ),
        examples=[1, 4],
    )


class CancelRequest(_PartyRequest):
    """The event to cancel for, and optionally how many tickets to give up."""

    quantity: Annotated[int | None, BeforeValidator(json_integer)] = Field(
        default=None,
        strict=True,
        ge=1,
        le=MAX_QUANTITY,
        description=(
            "Tickets to give up; left out: all of them. Fewer than you hold keeps the rest "
            "(a place in line keeps its place and wants fewer); more is 422; part of an open "
            "offer is 409 `offer_all_or_nothing`."
        ),
        examples=[None, 2],
    )


class BookingConfirmed(BaseModel):
    """You hold a ticket."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.BOOKED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    booking_id: int = Field(
        serialization_alias="bookingId", description="Your booking's id.", examples=[42]
    )
    status: Literal["confirmed"] = Field(description="You hold a ticket.", examples=["confirmed"])
    quantity: int = Field(description="Tickets of the booking.", examples=[1])


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
    position: int = Field(
        description="Your 1-based place in line, counted in entries (a party is one).",
        examples=[1],
    )
    quantity: int = Field(description="Tickets your party waits for.", examples=[1])


class CancelResult(BaseModel):
    """Your ticket or place in line is given up."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="What happened.", examples=[Message.CANCELLED_RELEASED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    outcome: Literal["reassigned", "offered", "released", "left_waiting_list"] = Field(
        description=(
            "`reassigned`: your ticket went to the first person in line; `offered`: it is "
            "offered to the first person in line (an event in `offer` mode); `released`: it "
            "went back to the pool; `left_waiting_list`: you gave up your place in line."
        ),
        examples=["released"],
    )
    released_tickets: int = Field(
        description="Tickets given back: 0 for a place in line (it holds none).", examples=[1]
    )
    quantity: int = Field(
        description="Tickets you still hold or wait for: 0 unless you cancelled part of them.",
        examples=[0],
    )


EXAMPLE_MY_BOOKING = {
    "bookingId": 42,
    "eventId": 1,
    "event_name": "Concert 2025",
    "status": "confirmed",
    "quantity": 1,
    "position": None,
    "created_at": EXAMPLE_TIME,
    "confirmed_at": EXAMPLE_TIME,
    "promoted_at": None,
    "offer_expires_at": None,
    "checked_in_at": None,
    "ticket_code": "2WUnCGv3YD1VjkdBw1KZNd9vlzHvi7wHmOYHf8zOeTQ",
}
QUANTITY = "Tickets of the booking: confirmed, offered, or wanted in line (all or nothing)."
CHECKED_IN_AT = "When the ticket was checked in at the door (UTC); null until then."


class MyBooking(BaseModel):
    """One of your tickets or places in line."""

    model_config = RESPONSE_CONFIG

    booking_id: int = Field(
        serialization_alias="bookingId", description="The booking's id.", examples=[42]
    )
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    event_name: str = Field(description="The event's name.", examples=["Concert 2025"])
    status: LiveStatus = Field(description=LIVE_STATUS_DESCRIPTION, examples=["confirmed"])
    quantity: int = Field(description=QUANTITY, examples=[1])
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
    offer_expires_at: datetime | None = Field(
        default=None,
        description="While `offered`: the deadline to accept (UTC); otherwise null.",
        examples=[None],
    )
    checked_in_at: datetime | None = Field(default=None, description=CHECKED_IN_AT, examples=[None])
    ticket_code: str | None = Field(
        default=None,
        description=(
            "While `confirmed`: the code to show at the door, for you only (keep it to yourself: "
            "whoever shows it first gets in). A transfer voids it. Null otherwise."
        ),
        examples=["2WUnCGv3YD1VjkdBw1KZNd9vlzHvi7wHmOYHf8zOeTQ"],
    )


class MyBookings(BaseModel):
    """Your tickets and places in line."""

    model_config = RESPONSE_CONFIG

    items: list[MyBooking] = Field(
        description="Your tickets and places in line, newest first.",
        examples=[[EXAMPLE_MY_BOOKING]],
    )


class OfferDeclined(BaseModel):
    """You turned the offer down; the ticket goes to the next in line or back to the pool."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.OFFER_DECLINED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])


EXAMPLE_EVENT_BOOKING = {
    "bookingId": 43,
    "userId": 8,
    "username": "user123",
    "status": "waitlisted",
    "quantity": 2,
    "position": 1,
    "created_at": EXAMPLE_TIME,
    "confirmed_at": None,
    "promoted_at": None,
    "offer_expires_at": None,
    "checked_in_at": None,
}


class EventBooking(BaseModel):
    """A ticket, offer or place in line on your event, and whose it is."""

    model_config = RESPONSE_CONFIG

    booking_id: int = Field(
        serialization_alias="bookingId", description="The booking's id.", examples=[43]
    )
    user_id: int = Field(serialization_alias="userId", description="Its holder.", examples=[8])
    username: str = Field(description="Its holder's username.", examples=["user123"])
    status: LiveStatus = Field(description=LIVE_STATUS_DESCRIPTION, examples=["waitlisted"])
    quantity: int = Field(description=QUANTITY, examples=[2])
    position: int | None = Field(
        default=None, description="1-based place in line when waitlisted; else null.", examples=[1]
    )
    created_at: datetime = Field(
        description="When they booked or joined the line (UTC).", examples=[EXAMPLE_TIME]
    )
    confirmed_at: datetime | None = Field(
        default=None, description="When they got the ticket (UTC).", examples=[None]
    )
    promoted_at: datetime | None = Field(
        default=None,
        description="When they got it from the waiting list (UTC); null if they never waited.",
        examples=[None],
    )
    offer_expires_at: datetime | None = Field(
        default=None,
        description="While `offered`: the deadline to accept (UTC); otherwise null.",
        examples=[None],
    )
    checked_in_at: datetime | None = Field(default=None, description=CHECKED_IN_AT, examples=[None])


class EventBookingPage(BaseModel):
    """One page of an event's tickets, open offers and line."""

    model_config = RESPONSE_CONFIG

    items: list[EventBooking] = Field(
        description="Confirmed tickets first, then open offers, then the line in order.",
        examples=[[EXAMPLE_EVENT_BOOKING]],
    )
    total: int = Field(description="Bookings in all (with the filter).", examples=[1])
    checked_in_tickets: int = Field(
        description="The event's tickets checked in at the door (whatever the filter).",
        examples=[0],
    )
    limit: int = Field(description="Page size asked for.", examples=[20])
    offset: int = Field(description="Bookings skipped before this page.", examples=[0])
