from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from booking_service.limits import DEFAULT_OFFER_SECONDS
from booking_service.models import WaitlistMode
from booking_service.schemas.common import (
    EXAMPLE_TIME,
    REQUEST_CONFIG,
    RESPONSE_CONFIG,
    Message,
    OfferSeconds,
    SaleMoment,
    TicketCount,
    example_of,
    json_integer,
)

# One enum in the document (`WaitlistMode`), so generated clients share one type for it. Not
# strict: a strict enum field refuses the JSON string that names a value.
WAITLIST_MODE = "What happens to a freed ticket while people wait (see `WaitlistMode`)."

EventStateName = Literal["upcoming", "open", "closed", "cancelled"]
STATE_DESCRIPTION = (
    "`upcoming`: sales have not started (`sales_start` is ahead); `open`: takes bookings; "
    "`closed`: closed by its owner or past `sales_end`, it takes no new bookings or places in "
    "line, but tickets, offers and places already held carry on; `cancelled`: everything was "
    "released. Judged by the database's clock."
)
SALES_START = (
    "When sales open (UTC); null: bookable from creation. Before it, booking answers 409 "
    "`sales_not_started` with `Retry-After`."
)
SALES_END = (
    "When sales end (UTC), after `sales_start`; null: no end. From it, booking answers 409 "
    "`sales_ended`; tickets and places already held carry on."
)
TRANSFERS_ALLOWED = "Whether holders may transfer their confirmed tickets to another user."
MAX_PER_USER = (
    "Most tickets one account may hold for the event (its party, booked all or nothing): 1 "
    "to the server's MAX_PER_USER_LIMIT (422 above it)."
)
MaxPerUser = Annotated[
    int,
    # The app publishes the configured MAX_PER_USER_LIMIT as `maximum` (openapi_document.py).
    Field(strict=True, ge=1, le=1000, description=MAX_PER_USER, examples=[4]),
    BeforeValidator(json_integer),
]


def _after_sales_start(sales_end: datetime | None, info: ValidationInfo) -> datetime | None:
    sales_start = info.data.get("sales_start")
    if sales_end is not None and sales_start is not None and sales_end <= sales_start:
        raise ValueError("sales_end must be after sales_start")
    return sales_end


# White space, as Unicode defines it (the White_Space property), spelled out: regex dialects
# disagree on what `\s` covers (Python counts U+001C-U+001F, ECMA-262 does not; ECMA-262
# counts U+FEFF, Python does not), and so do str.strip() and JSON Schema validators. The
# pattern lists the same characters the validator trims, so they agree in every dialect.
NAME_WHITE_SPACE = (
    "\t\n\v\f\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# 1-200 characters once that white space is trimmed, said as one pattern: optional white
# space, a non-space, up to 198 more characters (`[\s\S]`, a class and its complement, is any
# character in every dialect) ending in a non-space, optional white space.
# The raw length is bounded by MAX_REQUEST_BODY_BYTES.
TRIMMED_NAME_PATTERN = rf"^[{_SPACE}]*[^{_SPACE}](?:[\s\S]{{0,198}}[^{_SPACE}])?[{_SPACE}]*$"


def _trim_name(name: str) -> str:
    return name.strip(NAME_WHITE_SPACE)


EventName = Annotated[
    str,
    Field(
        min_length=1,
        pattern=TRIMMED_NAME_PATTERN,
        description=(
            "1-200 characters once surrounding white space (Unicode's White_Space characters) "
            "is trimmed (it is)."
        ),
        examples=["Concert 2025"],
    ),
    AfterValidator(_trim_name),
]


class EventCreate(BaseModel):
    """A new event and its number of tickets."""

    model_config = REQUEST_CONFIG

    name: EventName
    tickets: TicketCount
    waitlist_mode: WaitlistMode = Field(
        default=WaitlistMode.INSTANT, strict=False, description=WAITLIST_MODE, examples=["instant"]
    )
    offer_seconds: OfferSeconds = DEFAULT_OFFER_SECONDS
    sales_start: SaleMoment | None = Field(
        default=None, description=SALES_START, examples=["2025-06-01T18:00:00Z"]
    )
    sales_end: SaleMoment | None = Field(
        default=None, description=SALES_END, examples=["2025-06-08T18:00:00Z"]
    )
    transfers_allowed: bool = Field(default=True, description=TRANSFERS_ALLOWED, examples=[True])
    max_per_user: MaxPerUser = 1

    _check_window = field_validator("sales_end")(_after_sales_start)


class EventCreated(BaseModel):
    """The event was created."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.EVENT_CREATED])
    event_id: int = Field(
        serialization_alias="eventId", description="The new event's id.", examples=[1]
    )


# The counts and window both EventStatus and EventRead show, each defined once. Responses are
# built from services' results by attribute (`model_validate`): `validation_alias` names the
# attribute a field is read from, and the JSON keeps the field's name.
AvailableTickets = Annotated[
    int,
    Field(
        validation_alias="available",
        description=(
            "Tickets nobody holds: bookable while the event is `open` and nobody waits (while a"
            " party waits, they stay free until there are enough for all of it)."
        ),
        examples=[98],
    ),
]
TicketsBooked = Annotated[
    int,
    Field(
        validation_alias="booked",
        description="Tickets held by users (confirmed; open offers not included).",
        examples=[2],
    ),
]
WaitingListCount = Annotated[
    int,
    Field(
        validation_alias="waiting_count",
        description="Entries in the waiting list (a party is one entry).",
        examples=[0],
    ),
]
WaitingListTickets = Annotated[
    int,
    Field(
        validation_alias="waiting_tickets",
        description="Tickets wanted by the whole waiting list.",
        examples=[0],
    ),
]
FirstInLineNeeds = Annotated[
    int,
    Field(
        description=(
            "Tickets the first entry in line still lacks (its party's size minus the tickets "
            "free); 0 when nobody waits. Free tickets stay free while the first party waits "
            "for enough of them: nobody behind it, nor a newcomer, may take them."
        ),
        examples=[0],
    ),
]
OfferedTickets = Annotated[
    int,
    Field(
        validation_alias="offered_count",
        description="Tickets held by open offers to people from the line: neither available "
        "nor booked until accepted, declined or lapsed.",
        examples=[0],
    ),
]
ShownStateName = Annotated[
    EventStateName,
    Field(validation_alias="shown_state", description=STATE_DESCRIPTION, examples=["open"]),
]
SalesStart = Annotated[datetime | None, Field(description=SALES_START, examples=[None])]
SalesEnd = Annotated[datetime | None, Field(description=SALES_END, examples=[None])]
CheckedInTickets = Annotated[
    int,
    Field(
        validation_alias="checked_in_count",
        description="Confirmed tickets checked in at the door.",
        examples=[0],
    ),
]


class EventStatus(BaseModel):
    """The original service's status shape, plus the length of the waiting list."""

    model_config = RESPONSE_CONFIG

    event_name: str = Field(
        validation_alias="name", description="The event's name.", examples=["Concert 2025"]
    )
    available_tickets: AvailableTickets
    total_ticket_booked: TicketsBooked
    waiting_list_count: WaitingListCount
    waiting_list_tickets: WaitingListTickets
    first_in_line_needs: FirstInLineNeeds
    offered_tickets: OfferedTickets
    state: ShownStateName
    sales_start: SalesStart
    sales_end: SalesEnd
    checked_in_tickets: CheckedInTickets


class EventRead(BaseModel):
    """An event with its availability."""

    model_config = RESPONSE_CONFIG

    event_id: int = Field(
        validation_alias="id",
        serialization_alias="eventId",
        description="The event's id.",
        examples=[1],
    )
    name: str = Field(description="The event's name.", examples=["Concert 2025"])
    capacity: int = Field(description="Tickets in total.", examples=[100])
    available_tickets: AvailableTickets
    total_ticket_booked: TicketsBooked
    waiting_list_count: WaitingListCount
    waiting_list_tickets: WaitingListTickets
    first_in_line_needs: FirstInLineNeeds
    offered_tickets: OfferedTickets
    max_per_user: int = Field(description=MAX_PER_USER, examples=[4])
    owner_id: int = Field(
        serialization_alias="ownerId", description="Id of the user who created it.", examples=[7]
    )
    created_at: datetime = Field(description="When it was created (UTC).", examples=[EXAMPLE_TIME])
    state: ShownStateName
    waitlist_mode: WaitlistMode = Field(description=WAITLIST_MODE, examples=["instant"])
    offer_seconds: int = Field(
        description="How long an offer stays open, in seconds (used in `offer` mode).",
        examples=[900],
    )
    sales_start: SalesStart
    sales_end: SalesEnd
    transfers_allowed: bool = Field(description=TRANSFERS_ALLOWED, examples=[True])
    checked_in_tickets: CheckedInTickets


EXAMPLE_EVENT = example_of(EventRead)


class EventPage(BaseModel):
    """One page of events."""

    model_config = RESPONSE_CONFIG

    items: list[EventRead] = Field(description="Events, newest first.", examples=[[EXAMPLE_EVENT]])
    total: int = Field(description="Events in all.", examples=[1])
    limit: int = Field(description="Page size asked for.", examples=[20])
    offset: int = Field(description="Events skipped before this page.", examples=[0])


class EventUpdate(BaseModel):
    """Changes to an event; a field left out (or null) stays as it is. The mode and offer time
    apply first, so more tickets in the same request already follow the new mode."""

    model_config = REQUEST_CONFIG

    tickets: TicketCount | None = Field(
        default=None,
        description=(
            "The new number of tickets. More tickets go to the people in line at once (booked "
            "or offered, as the mode says); fewer may not go below those confirmed or offered."
        ),
        examples=[120],
    )
    waitlist_mode: WaitlistMode | None = Field(
        default=None,
        strict=False,
        description=WAITLIST_MODE + " Open offers keep their deadline.",
        examples=["offer"],
    )
    offer_seconds: OfferSeconds | None = Field(
        default=None,
        description="How long future offers stay open, in seconds (1 to 604800).",
        examples=[900],
    )
    sales_start: SaleMoment | None = Field(
        default=None, description="The new opening of sales (UTC).", examples=[None]
    )
    sales_end: SaleMoment | None = Field(
        default=None,
        description="The new end of sales (UTC): after `sales_start`, the new or the current one.",
        examples=[None],
    )
    transfers_allowed: bool | None = Field(
        default=None, description=TRANSFERS_ALLOWED, examples=[False]
    )
    max_per_user: MaxPerUser | None = Field(
        default=None,
        description=MAX_PER_USER + " Lowering it never touches bookings already made.",
        examples=[4],
    )

    _check_window = field_validator("sales_end")(_after_sales_start)


class EventCancelled(BaseModel):
    """The event is cancelled: every ticket, offer and place in line was released."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.EVENT_CANCELLED])
    event_id: int = Field(serialization_alias="eventId", description="The event.", examples=[1])
    released_tickets: int = Field(description="Confirmed tickets released.", examples=[98])
    released_offers: int = Field(description="Tickets of open offers withdrawn.", examples=[2])
    released_places: int = Field(
        description="Entries in line released (a party is one).", examples=[40]
    )


__all__ = [
    "EventCancelled",
    "EventCreate",
    "EventCreated",
    "EventPage",
    "EventRead",
    "EventStatus",
    "EventUpdate",
]
