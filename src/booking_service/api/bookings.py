from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from fastapi import APIRouter, Request, Response, status

from booking_service.api.idempotent import (
    IdempotencyKeyHeader,
    held_key,
    is_sent_answer,
    json_response,
    sent_again,
)
from booking_service.api.params import PageLimit, PageOffset
from booking_service.deps import (
    BookingServiceDep,
    CurrentUser,
    TokenUser,
)
from booking_service.errors import (
    AlreadyBooked,
    CheckedIn,
    EventCancelled,
    EventClosed,
    EventNotFound,
    NothingToCancel,
    OfferAllOrNothing,
    PartyTooLarge,
    QuantityAboveHeld,
    QuantityAboveLimit,
    SalesEnded,
    SalesNotStarted,
)
from booking_service.models import BookingStatus
from booking_service.openapi import REPLAYED_RESPONSE_HEADERS, error_responses
from booking_service.ratelimit import PER_USER, rate_limited
from booking_service.schemas.bookings import (
    BookingConfirmed,
    BookingWaitlisted,
    BookRequest,
    CancelRequest,
    CancelResult,
    LiveStatus,
    MyBooking,
    MyBookings,
)
from booking_service.schemas.common import Message
from booking_service.schemas.history import HistoryEntry, HistoryPage
from booking_service.services.cancels import CancelOutcome

router = APIRouter(tags=["bookings"])

# The documented 409 of a booking half a minute before sales open.
SALES_OPEN_AT = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)
EXAMPLE_TOO_EARLY = SalesNotStarted(SALES_OPEN_AT, SALES_OPEN_AT - timedelta(seconds=30))

CANCEL_MESSAGES = {
    CancelOutcome.REASSIGNED: Message.CANCELLED_REASSIGNED,
    CancelOutcome.OFFERED: Message.CANCELLED_OFFERED,
    CancelOutcome.RELEASED: Message.CANCELLED_RELEASED,
    CancelOutcome.LEFT_LINE: Message.LEFT_LINE,
}


@router.post(
    "/book",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    responses={
        201: {
            "model": BookingConfirmed,
            "description": "You hold the tickets (one booking of `quantity`).",
            "headers": REPLAYED_RESPONSE_HEADERS,
        },
        202: {
            "model": BookingWaitlisted,
            "description": (
                "Not enough tickets free, or people already wait: your party joined the "
                "waiting list as one entry."
            ),
            "headers": REPLAYED_RESPONSE_HEADERS,
        },
        **error_responses(
            EventNotFound(),
            AlreadyBooked(),
            EventClosed(),
            EventCancelled(),
            EXAMPLE_TOO_EARLY,
            SalesEnded(),
            PartyTooLarge(4, 2),
            QuantityAboveLimit(2),
            auth=True,
            validates="body",
            idempotent=True,
        ),
    },
    operation_id="book_ticket",
    summary="Book a ticket",
)
@rate_limited(PER_USER)
async def book_ticket(
    request: Request,
    response: Response,
    body: BookRequest,
    # The token alone: the booking itself checks, under its locks, that the account is open.
    user: TokenUser,
    service: BookingServiceDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Book a ticket; when the event is sold out you join its waiting list instead. A closed
    or cancelled event takes no bookings (409), nor does one whose sales have not started
    (409 `sales_not_started`, with `sales_start` and `Retry-After`) or have ended (409
    `sales_ended`). The sale window is judged by the database's clock."""
    async with held_key(
        request, idempotency_key, user_id=user.id, operation="book_ticket", body=body
    ) as key:
        if is_sent_answer(key):
            return sent_again(key)
        result = await service.book(
            user_id=user.id, event_id=body.event_id, quantity=body.quantity, key=key
        )
    if result.status is BookingStatus.CONFIRMED:
        confirmed = BookingConfirmed(
            message=Message.BOOKED,
            event_id=body.event_id,
            booking_id=result.booking_id,
            status="confirmed",
            quantity=result.quantity,
        )
        return json_response(201, confirmed, key=key)
    assert result.position is not None
    waitlisted = BookingWaitlisted(
        message=Message.WAITLISTED,
        event_id=body.event_id,
        booking_id=result.booking_id,
        status="waitlisted",
        position=result.position,
        quantity=result.quantity,
    )
    return json_response(202, waitlisted, key=key)


@router.post(
    "/cancel",
    response_model=CancelResult,
    response_description="Cancelled; `outcome` says where the ticket went.",
    responses={
        200: {"headers": REPLAYED_RESPONSE_HEADERS},
        **error_responses(
            EventNotFound(),
            NothingToCancel(),
            CheckedIn(),
            OfferAllOrNothing(),
            QuantityAboveHeld(2),
            auth=True,
            validates="body",
            idempotent=True,
        ),
    },
    operation_id="cancel_booking",
    summary="Cancel your ticket or leave the line",
)
@rate_limited(PER_USER)
async def cancel_booking(
    request: Request,
    response: Response,
    body: CancelRequest,
    user: CurrentUser,
    service: BookingServiceDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Give back your tickets (the first entry in line gets them as soon as enough are free
    for its whole party, or is offered them in `offer` mode), turn down an open offer, or
    leave the line. With `quantity` below what you hold, give back only that many and keep
    the rest (in line: keep your place and wait for fewer); an open offer is accepted or
    declined whole (409 `offer_all_or_nothing`). This works on a closed event too. A booking
    checked in at the door can no longer be given back (409 `checked_in`)."""

    async with held_key(
        request, idempotency_key, user_id=user.id, operation="cancel_booking", body=body
    ) as key:
        if is_sent_answer(key):
            return sent_again(key)
        cancelled = await service.cancel(
            user_id=user.id, event_id=body.event_id, quantity=body.quantity, key=key
        )
    result = CancelResult(
        message=CANCEL_MESSAGES[cancelled.outcome],
        event_id=body.event_id,
        outcome=cancelled.outcome.value,
        released_tickets=cancelled.released,
        quantity=cancelled.kept,
    )
    return json_response(200, result, key=key)


@router.get(
    "/me/bookings",
    response_model=MyBookings,
    response_description="Your tickets and places in line.",
    responses=error_responses(auth=True),
    operation_id="list_my_bookings",
    summary="Your tickets and places in line",
)
@rate_limited(PER_USER)
async def list_my_bookings(
    request: Request, response: Response, user: CurrentUser, service: BookingServiceDep
) -> MyBookings:
    """Your tickets (each with the code to show at the door), open offers (with their
    deadline) and places in line across all events, newest first."""
    items = await service.list_mine(user.id)
    return MyBookings(
        items=[
            MyBooking(
                booking_id=item.id,
                event_id=item.event_id,
                event_name=item.event_name,
                status=cast(LiveStatus, item.status.value),
                quantity=item.quantity,
                position=item.position,
                created_at=item.created_at,
                confirmed_at=item.confirmed_at,
                promoted_at=item.promoted_at,
                offer_expires_at=item.offer_expires_at,
                checked_in_at=item.checked_in_at,
                ticket_code=service.ticket_code(item),
            )
            for item in items
        ]
    )


@router.get(
    "/me/history",
    response_model=HistoryPage,
    response_description="One page of your history, newest first.",
    responses=error_responses(auth=True, validates="query"),
    operation_id="list_my_history",
    summary="Your booking history",
)
@rate_limited(PER_USER)
async def list_my_history(
    request: Request,
    response: Response,
    user: CurrentUser,
    service: BookingServiceDep,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> HistoryPage:
    """Every change of your tickets and places in line, on every event, newest first."""
    entries, total = await service.history_mine(user.id, limit=limit, offset=offset)
    return HistoryPage(
        items=[HistoryEntry.model_validate(entry) for entry in entries],
        total=total,
        limit=limit,
        offset=offset,
    )
