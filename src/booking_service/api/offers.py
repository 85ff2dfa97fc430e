"""Answering an offer: in an event's `offer` mode, a freed ticket is held for the first in line
until a deadline."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from booking_service.deps import CurrentUser, OfferServiceDep
from booking_service.errors import EventCancelled, EventNotFound, OfferExpired, OfferNotFound
from booking_service.openapi import error_responses
from booking_service.ratelimit import PER_USER, rate_limited
from booking_service.schemas.bookings import BookingConfirmed, BookingRequest, OfferDeclined
from booking_service.schemas.common import Message

router = APIRouter(tags=["bookings"])

OFFER_ERRORS = error_responses(
    EventNotFound(), OfferNotFound(), EventCancelled(), OfferExpired(), auth=True, validates="body"
)


@router.post(
    "/offers/accept",
    response_model=BookingConfirmed,
    response_description="The offered ticket is yours.",
    responses=OFFER_ERRORS,
    operation_id="accept_offer",
    summary="Accept the ticket offered to you",
)
@rate_limited(PER_USER)
async def accept_offer(
    request: Request,
    response: Response,
    body: BookingRequest,
    user: CurrentUser,
    service: OfferServiceDep,
) -> BookingConfirmed:
    """Take the ticket held for you, before `offer_expires_at` (see `GET /me/bookings`).
    After the deadline the answer is 410 `offer_expired`, whether or not the server has
    already passed the ticket on: the deadline is checked when you answer."""
    booking_id, quantity = await service.accept(user_id=user.id, event_id=body.event_id)
    return BookingConfirmed(
        message=Message.BOOKED,
        event_id=body.event_id,
        booking_id=booking_id,
        status="confirmed",
        quantity=quantity,
    )


@router.post(
    "/offers/decline",
    response_model=OfferDeclined,
    response_description="Declined; the ticket goes to the next in line.",
    responses=OFFER_ERRORS,
    operation_id="decline_offer",
    summary="Decline the ticket offered to you",
)
@rate_limited(PER_USER)
async def decline_offer(
    request: Request,
    response: Response,
    body: BookingRequest,
    user: CurrentUser,
    service: OfferServiceDep,
) -> OfferDeclined:
    """Turn the offer down: you leave the line, and the ticket is offered to the next person
    in line at once (or goes back to the pool when nobody waits). After the deadline: 410."""
    await service.decline(user_id=user.id, event_id=body.event_id)
    return OfferDeclined(message=Message.OFFER_DECLINED, event_id=body.event_id)
