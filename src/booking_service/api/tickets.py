"""Tickets once bought: the holder transfers one to another user; the event's owner checks
them in at the door."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from booking_service.api.params import EventIdPath
from booking_service.deps import CheckInServiceDep, CurrentUser, TransferServiceDep
from booking_service.errors import (
    AlreadyCheckedIn,
    CheckedIn,
    EventNotFound,
    NotConfirmed,
    NotEventOwner,
    NothingToTransfer,
    RecipientHasClaim,
    RecipientNotFound,
    TicketNotFound,
    TransfersDisabled,
)
from booking_service.openapi import error_responses
from booking_service.ratelimit import PER_USER, rate_limited
from booking_service.schemas.common import Message
from booking_service.schemas.tickets import (
    CheckInRequest,
    CheckInResult,
    TransferRequest,
    TransferResult,
)

router = APIRouter()

# The documented 409 of a second scan of the same code.
EXAMPLE_SECOND_SCAN = AlreadyCheckedIn(datetime(2025, 6, 1, 18, 30, 0, 123456, tzinfo=UTC))


@router.post(
    "/tickets/transfer",
    response_model=TransferResult,
    response_description="The ticket is the recipient's now.",
    responses=error_responses(
        EventNotFound(),
        NothingToTransfer(),
        RecipientNotFound(),
        NotConfirmed(),
        CheckedIn(),
        RecipientHasClaim(),
        TransfersDisabled(),
        auth=True,
        validates="body",
    ),
    operation_id="transfer_ticket",
    summary="Give your ticket to another user",
    tags=["bookings"],
)
@rate_limited(PER_USER)
async def transfer_ticket(
    request: Request,
    response: Response,
    body: TransferRequest,
    user: CurrentUser,
    service: TransferServiceDep,
) -> TransferResult:
    """Move your confirmed ticket for the event to another open account, in one transaction.
    The recipient gets a booking of their own with a new ticket code; yours stops working.
    Only a confirmed ticket moves (409 for an offer or a place in line), never one checked in
    at the door (409 `checked_in`), and not when the owner turned transfers off (403). The
    recipient must exist and be open (404, one answer for both) and hold nothing for the
    event yet (409). Works on a closed event too: tickets already held carry on."""
    moved = await service.transfer(
        user_id=user.id, event_id=body.event_id, to_username=body.to_username
    )
    return TransferResult(
        message=Message.TRANSFERRED,
        event_id=body.event_id,
        booking_id=moved.booking_id,
        to_user_id=moved.to_user_id,
        to_username=body.to_username,
        quantity=moved.quantity,
        transferred_at=moved.transferred_at,
    )


@router.post(
    "/events/{eventId}/check-in",
    response_model=CheckInResult,
    response_description="The ticket is checked in: let its holder in.",
    responses=error_responses(
        EventNotFound(),
        NotEventOwner(),
        TicketNotFound(),
        EXAMPLE_SECOND_SCAN,
        auth=True,
        validates="body",
    ),
    operation_id="check_in_ticket",
    summary="Check a ticket in at the door",
    tags=["organizer"],
)
@rate_limited(PER_USER)
async def check_in_ticket(
    request: Request,
    response: Response,
    event_id: EventIdPath,
    body: CheckInRequest,
    user: CurrentUser,
    service: CheckInServiceDep,
) -> CheckInResult:
    """Only the event's owner: check in the ticket with this code, once. The same code again
    is 409 `already_checked_in` with the first time; a code never issued, whose ticket was
    given back or transferred to someone else (its new holder has a new code), or of another
    event is 404 `ticket_not_found`, one answer for all. A checked-in ticket can no longer be
    cancelled or transferred."""
    checked = await service.check_in(owner_id=user.id, event_id=event_id, code=body.code)
    return CheckInResult(
        message=Message.CHECKED_IN,
        event_id=event_id,
        booking_id=checked.booking_id,
        user_id=checked.user_id,
        username=checked.username,
        quantity=checked.quantity,
        checked_in_at=checked.checked_in_at,
    )
