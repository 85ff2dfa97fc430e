"""Routes only an event's owner may use: change, close or cancel it, read its bookings and
history. Anyone else gets 403 `not_event_owner`; an unknown event is 404 for everyone."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query, Request, Response

from booking_service.api.params import EventIdPath, PageLimit, PageOffset
from booking_service.deps import CurrentUser, OrganizerServiceDep
from booking_service.errors import (
    CapacityBelowHeld,
    CapacityBelowParty,
    EventCancelled,
    EventNotFound,
    NotEventOwner,
    SaleWindowEmpty,
)
from booking_service.models import BookingStatus
from booking_service.openapi import error_responses
from booking_service.ratelimit import PER_USER, rate_limited
from booking_service.schemas import events as event_schemas
from booking_service.schemas.bookings import EventBooking, EventBookingPage, LiveStatus
from booking_service.schemas.common import Message
from booking_service.schemas.events import EventRead, EventUpdate
from booking_service.schemas.history import HistoryEntry, HistoryPage
from booking_service.services.organizer import EventChange

router = APIRouter(tags=["organizer"])

# The owner's paginated views of their event.
OWNER_PAGE_ERRORS = error_responses(EventNotFound(), NotEventOwner(), auth=True, validates="query")


@router.patch(
    "/events/{eventId}",
    response_model=EventRead,
    response_description="The event as changed.",
    responses=error_responses(
        EventNotFound(),
        NotEventOwner(),
        EventCancelled(),
        CapacityBelowHeld(),
        CapacityBelowParty(),
        SaleWindowEmpty(),
        auth=True,
        validates="body",
    ),
    operation_id="update_event",
    summary="Change your event",
)
@rate_limited(PER_USER)
async def update_event(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    body: EventUpdate,
    user: CurrentUser,
    service: OrganizerServiceDep,
) -> EventRead:
    """Change the number of tickets, the waiting-list mode, the offer time, the sale window or
    whether transfers are allowed, all in one transaction. More tickets go to the people in
    line by its rule (booked for them, or offered in `offer` mode); fewer may not go below the
    tickets confirmed or offered (409 `capacity_below_held`) nor below the largest party in
    line (409 `capacity_below_party`: it could never be served). A lower `max_per_user`
    applies to new bookings only. `sales_end` must come after `sales_start`: 422 when
    the body names both, 409 `sale_window_empty` when it moves one end past the other as
    stored. A closed event can still be changed; a cancelled one cannot."""
    change = EventChange(
        tickets=body.tickets,
        waitlist_mode=body.waitlist_mode,
        offer_seconds=body.offer_seconds,
        sales_start=body.sales_start,
        sales_end=body.sales_end,
        transfers_allowed=body.transfers_allowed,
        max_per_user=body.max_per_user,
    )
    return EventRead.model_validate(await service.update(user.id, event_id, change))


@router.post(
    "/events/{eventId}/close",
    response_model=EventRead,
    response_description="The event, now closed.",
    responses=error_responses(
        EventNotFound(), NotEventOwner(), EventCancelled(), auth=True, validates="path"
    ),
    operation_id="close_event",
    summary="Close your event to new bookings",
)
@rate_limited(PER_USER)
async def close_event(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    user: CurrentUser,
    service: OrganizerServiceDep,
) -> EventRead:
    """Stop new bookings and new places in line (409 `event_closed`). Tickets, offers and
    places already held carry on: a ticket given back still goes to the first in line, and
    only returns to the pool when nobody waits. Closing a closed event changes nothing."""
    return EventRead.model_validate(await service.close(user.id, event_id))


@router.post(
    "/events/{eventId}/cancel",
    response_model=event_schemas.EventCancelled,
    response_description="The event is cancelled; the counts say what was released.",
    responses=error_responses(EventNotFound(), NotEventOwner(), auth=True, validates="path"),
    operation_id="cancel_event",
    summary="Cancel your event",
)
@rate_limited(PER_USER)
async def cancel_event(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    user: CurrentUser,
    service: OrganizerServiceDep,
) -> event_schemas.EventCancelled:
    """Cancel the event: every ticket, offer and place in line is released in one
    transaction, each recorded in the history as `event_cancelled`, and no booking is taken
    any more (409 `event_cancelled`). Cancelling it again releases nothing more."""
    released = await service.cancel(user.id, event_id)
    return event_schemas.EventCancelled(
        message=Message.EVENT_CANCELLED,
        event_id=event_id,
        released_tickets=released.tickets,
        released_offers=released.offers,
        released_places=released.places,
    )


@router.get(
    "/events/{eventId}/bookings",
    response_model=EventBookingPage,
    response_description="One page of the event's tickets, offers and line.",
    responses=OWNER_PAGE_ERRORS,
    operation_id="list_event_bookings",
    summary="Your event's bookings and line",
)
@rate_limited(PER_USER)
async def list_event_bookings(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    user: CurrentUser,
    service: OrganizerServiceDep,
    status: Annotated[
        Literal["all", "confirmed", "offered", "waitlisted"],
        Query(description="Only bookings with this status; `all` (the default) for every one."),
    ] = "all",
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> EventBookingPage:
    """Who holds what on your event: confirmed tickets first (with when each was checked in),
    then open offers with their deadlines, then the line in order with each place, and how
    many tickets were checked in. Ended bookings are in the history."""
    claims, total, checked_in = await service.list_bookings(
        user.id,
        event_id,
        status=None if status == "all" else BookingStatus(status),
        limit=limit,
        offset=offset,
    )
    items = [
        EventBooking(
            booking_id=claim.id,
            user_id=claim.user_id,
            username=claim.username,
            status=cast(LiveStatus, claim.status.value),
            quantity=claim.quantity,
            position=claim.position,
            created_at=claim.created_at,
            confirmed_at=claim.confirmed_at,
            promoted_at=claim.promoted_at,
            offer_expires_at=claim.offer_expires_at,
            checked_in_at=claim.checked_in_at,
        )
        for claim in claims
    ]
    return EventBookingPage(
        items=items, total=total, checked_in_tickets=checked_in, limit=limit, offset=offset
    )


@router.get(
    "/events/{eventId}/history",
    response_model=HistoryPage,
    response_description="One page of the event's history, newest first.",
    responses=OWNER_PAGE_ERRORS,
    operation_id="list_event_history",
    summary="Your event's booking history",
)
@rate_limited(PER_USER)
async def list_event_history(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    user: CurrentUser,
    service: OrganizerServiceDep,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> HistoryPage:
    """Every change of every ticket and place in line on your event, newest first: booked,
    waitlisted, promoted, offered, accepted, declined, expired, left, cancelled and
    event_cancelled, each with its time."""
    entries, total = await service.history(user.id, event_id, limit=limit, offset=offset)
    return HistoryPage(
        items=[HistoryEntry.model_validate(entry) for entry in entries],
        total=total,
        limit=limit,
        offset=offset,
    )
