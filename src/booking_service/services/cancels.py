"""Cancelling: giving back a ticket, turning down an open offer, or leaving the waiting list.

One function serves a lone cancel and every cancel of one event in a grouped transaction
alike, set-based: its statement count does not grow with the number of cancels.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.errors import AppError, CheckedIn, NothingToCancel
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
    REASSIGNED = "reassigned"  # the ticket went to the first person in line
    OFFERED = "offered"  # the ticket is offered to the first person in line
    RELEASED = "released"  # the ticket went back to the pool
    LEFT_LINE = "left_waiting_list"  # the user gave up a place on the waiting list


async def cancel_claims(
    session: AsyncSession, changes: EventChanges, user_ids: Sequence[int]
) -> dict[int, CancelOutcome | AppError]:
    """Cancel each of these distinct users' live claim on the event (locked by the caller,
    which writes `changes` afterwards), as if one after another: first everyone who leaves
    the waiting list, then the tickets and offers given back, in the order of `user_ids`. Freed
    tickets go to the head of the waiting list at once (or are offered to them): a ticket is never
    free while someone waits.

    Users without a live claim get NothingToCancel, and those whose ticket was checked in at
    the door CheckedIn; neither changes anything.
    """
    claims = await bookings.live_claims_for_update(session, changes.event.id, user_ids)
    outcomes: dict[int, CancelOutcome | AppError] = {}
    ending: dict[HistoryAction, list[LockedBooking]] = {action: [] for action in ENDED_AS}
    freeing: list[int] = []  # users whose claim frees a ticket, in order
    for user_id in user_ids:
        claim = claims.get(user_id)
        if claim is None:
            outcomes[user_id] = NothingToCancel()
        elif claim.checked_in_at is not None:
            outcomes[user_id] = CheckedIn()
        elif claim.status is BookingStatus.WAITLISTED:
            ending[HistoryAction.LEFT].append(claim)
            outcomes[user_id] = CancelOutcome.LEFT_LINE
        elif claim.status is BookingStatus.OFFERED:
            # Cancelling an open offer turns it down (or, past its deadline, lets it lapse).
            lapsed = is_lapsed(claim, changes.now)
            ending[HistoryAction.EXPIRED if lapsed else HistoryAction.DECLINED].append(claim)
            freeing.append(user_id)
        else:
            ending[HistoryAction.CANCELLED].append(claim)
            freeing.append(user_id)
    # Leavers first: their history comes before any promotion, so the waiting list moves up.
    for action, ended in ending.items():
        if ended:
            await end_claims(session, changes, ended, action)
    handed_on = await hand_on(session, changes, len(freeing))
    given = len(handed_on.promoted) + len(handed_on.offered)
    given_as = CancelOutcome.REASSIGNED if handed_on.promoted else CancelOutcome.OFFERED
    for index, user_id in enumerate(freeing):
        outcomes[user_id] = given_as if index < given else CancelOutcome.RELEASED
    return outcomes
