from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from booking_service.api.idempotent import (
    IdempotencyKeyHeader,
    held_key,
    is_sent_answer,
    json_response,
    sent_again,
)
from booking_service.api.params import EventIdPath, PageLimit, PageOffset
from booking_service.deps import CurrentUser, EventServiceDep, StatusReadsDep
from booking_service.errors import EventNotFound
from booking_service.openapi import REPLAYED_RESPONSE_HEADERS, error_responses
from booking_service.ratelimit import PER_USER, rate_limited
from booking_service.schemas.common import Message
from booking_service.schemas.events import (
    EventCreate,
    EventCreated,
    EventPage,
    EventRead,
    EventStatus,
)

router = APIRouter(tags=["events"])


@router.post(
    "/initialize",
    status_code=status.HTTP_201_CREATED,
    response_model=EventCreated,
    response_description="The event was created.",
    responses={
        201: {"headers": REPLAYED_RESPONSE_HEADERS},
        **error_responses(auth=True, validates="body", idempotent=True),
    },
    operation_id="create_event",
    summary="Create an event",
)
@rate_limited(PER_USER)
async def create_event(
    request: Request,
    response: Response,
    body: EventCreate,
    user: CurrentUser,
    service: EventServiceDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Create an event with a number of tickets. You become its owner. Optionally choose what
    happens to a freed ticket while people wait: booked for the first in line at once
    (`instant`, the default) or offered to them for `offer_seconds` (`offer`); a sale window
    (`sales_start`, `sales_end`, judged by the database's clock); and whether holders may
    transfer their tickets (`transfers_allowed`, true unless said otherwise); and how many
    tickets one account may book at once (`max_per_user`, its party: 1 unless said, at most
    the server's MAX_PER_USER_LIMIT)."""

    async with held_key(
        request, idempotency_key, user_id=user.id, operation="create_event", body=body
    ) as key:
        if is_sent_answer(key):
            return sent_again(key)
        event_id = await service.create(
            owner_id=user.id,
            name=body.name,
            tickets=body.tickets,
            waitlist_mode=body.waitlist_mode,
            offer_seconds=body.offer_seconds,
            sales_start=body.sales_start,
            sales_end=body.sales_end,
            transfers_allowed=body.transfers_allowed,
            max_per_user=body.max_per_user,
            key=key,
        )
    created = EventCreated(message=Message.EVENT_CREATED, event_id=event_id)
    return json_response(201, created, key=key)


@router.get(
    "/status/{eventId}",
    response_model=EventStatus,
    response_description="The event's counts.",
    responses=error_responses(EventNotFound(), auth=True, validates="path"),
    operation_id="get_event_status",
    summary="Tickets available and booked",
)
@rate_limited(PER_USER)
async def get_event_status(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    _user: CurrentUser,
    reads: StatusReadsDep,
) -> EventStatus:
    """The event's counts, all from one consistent read. During a sale each worker answers
    polls from a snapshot at most `STATUS_CACHE_SECONDS` old (0.2 s unless configured)."""
    return EventStatus.model_validate(await reads.status(event_id))


@router.get(
    "/events",
    response_model=EventPage,
    response_description="One page of events.",
    responses=error_responses(auth=True, validates="query"),
    operation_id="list_events",
    summary="List events",
)
@rate_limited(PER_USER)
async def list_events(
    request: Request,
    response: Response,
    _user: CurrentUser,
    service: EventServiceDep,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> EventPage:
    """Events with their availability, newest first."""
    events, total = await service.list(limit=limit, offset=offset)
    return EventPage(
        items=[EventRead.model_validate(event) for event in events],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/events/{eventId}",
    response_model=EventRead,
    response_description="The event.",
    responses=error_responses(EventNotFound(), auth=True, validates="path"),
    operation_id="get_event",
    summary="One event",
)
@rate_limited(PER_USER)
async def get_event(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    _user: CurrentUser,
    service: EventServiceDep,
) -> EventRead:
    """One event with its availability."""
    return EventRead.model_validate(await service.get(event_id))
