from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from booking_service.schemas.common import (
    EXAMPLE_TIME,
    REQUEST_CONFIG,
    RESPONSE_CONFIG,
    EventId,
    Message,
    TicketCount,
)

# 1-200 characters once surrounding white space is trimmed, said as one pattern so that the
# published schema and the validator agree exactly: optional white space, a non-space, up to
# 198 more characters ending in a non-space, optional white space. Python's regular expressions
# (the ones OpenAPI fuzzers use for `pattern`) and str.strip() agree on what a space is.
# The raw length is bounded by MAX_REQUEST_BODY_BYTES.
TRIMMED_NAME_PATTERN = r"^\s*\S(?:[\s\S]{0,198}\S)?\s*$"
EventName = Annotated[
    str,
    Field(
        min_length=1,
        pattern=TRIMMED_NAME_PATTERN,
        description="1-200 characters once surrounding white space is trimmed (it is).",
        examples=["Concert 2025"],
    ),
    AfterValidator(str.strip),
]


class EventCreate(BaseModel):
    """A new event and its number of tickets."""

    model_config = ConfigDict(**REQUEST_CONFIG, regex_engine="python-re")

    name: EventName
    tickets: TicketCount


class EventCreated(BaseModel):
    """The event was created."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.EVENT_CREATED])
    event_id: int = Field(
        serialization_alias="eventId", description="The new event's id.", examples=[1]
    )


class EventStatus(BaseModel):
    """The original service's status shape, plus the length of the waiting list."""

    model_config = RESPONSE_CONFIG

    event_name: str = Field(description="The event's name.", examples=["Concert 2025"])
    available_tickets: int = Field(description="Tickets free to book now.", examples=[98])
    total_ticket_booked: int = Field(description="Tickets held by users.", examples=[2])
    waiting_list_count: int = Field(description="People waiting for a ticket.", examples=[0])


EXAMPLE_EVENT = {
    "eventId": 1,
    "name": "Concert 2025",
    "capacity": 100,
    "available_tickets": 98,
    "total_ticket_booked": 2,
    "waiting_list_count": 0,
    "ownerId": 7,
    "created_at": EXAMPLE_TIME,
}


class EventRead(BaseModel):
    """An event with its availability."""

    model_config = RESPONSE_CONFIG

    event_id: int = Field(
        serialization_alias="eventId", description="The event's id.", examples=[1]
    )
    name: str = Field(description="The event's name.", examples=["Concert 2025"])
    capacity: int = Field(description="Tickets in total.", examples=[100])
    available_tickets: int = Field(description="Tickets free to book now.", examples=[98])
    total_ticket_booked: int = Field(description="Tickets held by users.", examples=[2])
    waiting_list_count: int = Field(description="People waiting for a ticket.", examples=[0])
    owner_id: int = Field(
        serialization_alias="ownerId", description="Id of the user who created it.", examples=[7]
    )
    created_at: datetime = Field(description="When it was created (UTC).", examples=[EXAMPLE_TIME])


class EventPage(BaseModel):
    """One page of events."""

    model_config = RESPONSE_CONFIG

    items: list[EventRead] = Field(description="Events, newest first.", examples=[[EXAMPLE_EVENT]])
    total: int = Field(description="Events in all.", examples=[1])
    limit: int = Field(description="Page size asked for.", examples=[20])
    offset: int = Field(description="Events skipped before this page.", examples=[0])


__all__ = [
    "EventCreate",
    "EventCreated",
    "EventId",
    "EventPage",
    "EventRead",
    "EventStatus",
]
