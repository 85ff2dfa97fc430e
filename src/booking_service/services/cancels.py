"""Cancelling: giving back tickets, turning down an open offer, or leaving the waiting list,
whole or in part.

One function serves a lone cancel and every cancel of one event in a grouped transaction
alike, set-based: its statement count does not grow with the number of cancels.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.errors import (
    AppError,
    CheckedIn,
    NothingToCancel,
    OfferAllOrNothing,
    QuantityAboveHeld,
)
from booking_service.models import BookingStatus, HistoryAction
from booking_service.repositories import bookings
from booking_service.repositories.bookings import LockedBooking
from booking_service.services.line import (
    ENDED_AS,
    EventChanges,
    end_claims,
    hand_on,
    is_lapsed,
)


class CancelOutcome(enum.StrEnum):
    REASSIGNED = "reassigned"  # the tickets went to the first entry in line
    OFFERED = "offered"  # the tickets are offered to the first entry in line
    RELEASED = "released"  # the tickets went back to the pool
    LEFT_LINE = "left_waiting_list"  # the user gave up (part of) a place on the waiting list


@dataclass(frozen=True, slots=True)
class Cancelled:
    outcome: CancelOutcome
    released: int = 1  # tickets given back (none for a place in line)
    kept: int = 0  # tickets still held, or still wanted in line (a partial cancel)


# One user's cancel: (user id, tickets to give up; None: all of them).
Cancel = tuple[int, int | None]


async def cancel_claims(
    session: AsyncSession, changes: EventChanges, wanted: Sequence[Cancel]
) -> dict[int, Cancelled | AppError]:
    """Cancel each of these distinct users' live claim on the event (locked by the caller,
    which writes `changes` afterwards), whole or `quantity` of its tickets, as if one after
    another: first everyone who leaves the waiting list or wants fewer tickets there, then the
    tickets and offers given back, in the order of `wanted`. Freed tickets follow the line rule
    at once (services.line.hand_on).

    Refused, changing nothing: no live claim (NothingToCancel), a ticket checked in at the door
    (CheckedIn), more tickets than held (QuantityAboveHeld), part of an open offer
    (OfferAllOrNothing).
    """
    claims = await bookings.live_claims_for_update(
        session, changes.event.id, [user for user, _ in wanted]
    )
    outcomes: dict[int, Cancelled | AppError] = {}
    ending: dict[HistoryAction, list[LockedBooking]] = {action: [] for action in ENDED_AS}
    lowering: list[tuple[LockedBooking, int, HistoryAction]] = []  # partial cancels
    freeing: list[tuple[int, int]] = []  # (user, tickets freed), in order
    for user_id, quantity in wanted:
        claim = claims.get(user_id)
        refused = _refusal(claim, quantity)
        if refused is not None:
            outcomes[user_id] = refused
            continue
        assert claim is not None
        tickets = claim.quantity if quantity is None else quantity
        kept = claim.quantity - tickets
        if claim.status is BookingStatus.WAITLISTED:
            if kept:
                lowering.append((claim, tickets, HistoryAction.LEFT))
            else:
                ending[HistoryAction.LEFT].append(claim)
            # A place in line holds no tickets: none is given back.
            outcomes[user_id] = Cancelled(CancelOutcome.LEFT_LINE, 0, kept)
            continue
        if claim.status is BookingStatus.OFFERED:
            # Cancelling an open offer turns it down (or, past its deadline, lets it lapse).
            lapsed = is_lapsed(claim, changes.now)
            ending[HistoryAction.EXPIRED if lapsed else HistoryAction.DECLINED].append(claim)
        elif kept:
            lowering.append((claim, tickets, HistoryAction.CANCELLED))
        else:
            ending[HistoryAction.CANCELLED].append(claim)
        freeing.append((user_id, tickets))
    # Leavers first: their history comes before any promotion, so the waiting list moves up.
    for action, ended in ending.items():
        if ended:
            await end_claims(session, changes, ended, action)
    if lowering:
        await bookings.lower_quantities(session, {c.id: tickets for c, tickets, _ in lowering})
        for claim, tickets, action in lowering:
            changes.record(claim, action, tickets)
            if claim.status is BookingStatus.WAITLISTED:
                changes.waiting_tickets -= tickets
    handed_on = await hand_on(session, changes, sum(tickets for _, tickets in freeing))
    given_as = CancelOutcome.REASSIGNED if handed_on.promoted else CancelOutcome.OFFERED
    start = 0  # the first of this user's freed tickets, counted over everyone's, in order
    for user_id, tickets in freeing:
        held = claims[user_id].quantity
        outcome = given_as if start < handed_on.tickets else CancelOutcome.RELEASED
        outcomes[user_id] = Cancelled(outcome, tickets, held - tickets)
        start += tickets
    return outcomes


def _refusal(claim: LockedBooking | None, quantity: int | None) -> AppError | None:
    """Why this cancel is refused, if it is: the order of refusals."""
    if claim is None:
        return NothingToCancel()
    if claim.checked_in_at is not None:
        return CheckedIn()
    if quantity is not None and quantity > claim.quantity:
        return QuantityAboveHeld(claim.quantity)
    if quantity is not None and quantity < claim.quantity and claim.status is BookingStatus.OFFERED:
        return OfferAllOrNothing()
    return None
