"""Transfers: a holder gives their confirmed booking, all its tickets, to another user.

One transaction under the event's lock, like every change to the event: the giver's booking
ends as `transferred` and the recipient gets a booking of their own, confirmed, with a new
ticket code (the giver's code stops working with the booking it belonged to). The event's
counters do not move: the same confirmed tickets before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import is_duplicate_key, is_missing_reference, run_transaction
from booking_service.errors import (
    CheckedIn,
    EventNotFound,
    NotConfirmed,
    NothingToTransfer,
    RecipientHasClaim,
    RecipientNotFound,
    TransfersDisabled,
)
from booking_service.models import BookingStatus, HistoryAction
from booking_service.repositories import bookings, events, outbox, users
from booking_service.repositories.bookings import NewClaim
from booking_service.repositories.history import NewEntry
from booking_service.services.line import EventChanges


@dataclass(frozen=True, slots=True)
class Transferred:
    booking_id: int  # the recipient's new booking
    to_user_id: int
    quantity: int
    transferred_at: datetime


class TransferService:
    def __init__(self, session: AsyncSession, *, lock_retries: int) -> None:
        self._session = session
        self._retries = lock_retries

    async def transfer(self, *, user_id: int, event_id: int, to_username: str) -> Transferred:
        """Move the user's confirmed ticket for the event to the open account `to_username`.

        Refusals, in this order: the event (404); the giver's claim: none (404), an offer or a
        place in line (409: only confirmed tickets move), checked in (409); transfers turned
        off by the owner (403); the recipient: no open account by that name (404, one answer
        for unknown and closed), already holding or waiting for the event (409).
        """
        try:
            return await run_transaction(
                self._session,
                lambda: self._transfer(user_id, event_id, to_username),
                retries=self._retries,
            )
        except IntegrityError as exc:
            # The keys agree with the checks made under the lock; kept as a second line.
            if is_duplicate_key(exc):
                raise RecipientHasClaim() from exc
            if is_missing_reference(exc):
                raise RecipientNotFound() from exc
            raise

    async def _transfer(self, user_id: int, event_id: int, to_username: str) -> Transferred:
        session = self._session
        event = await events.get_event_for_update(session, event_id)
        if event is None:
            raise EventNotFound()
        mine = await bookings.get_active_for_update(session, event_id=event_id, user_id=user_id)
        if mine is None:
            raise NothingToTransfer()
        if mine.status is not BookingStatus.CONFIRMED:
            raise NotConfirmed()
        if mine.checked_in_at is not None:
            raise CheckedIn()
        if not event.transfers_allowed:
            raise TransfersDisabled()
        # Share-locked like a booking's account: it cannot close while it receives a ticket.
        recipient = await users.open_account_for_share(session, to_username)
        if recipient is None:
            raise RecipientNotFound()
        # Every claim on the event is made under its lock, held now: this read is current.
        if recipient == user_id or await bookings.live_claimants(session, [(event_id, recipient)]):
            raise RecipientHasClaim()
        changes = EventChanges(event)
        await bookings.end(session, [mine.id], BookingStatus.TRANSFERRED, changes.now)
        received = await bookings.add_claims(
            session,
            [NewClaim(event_id, recipient, BookingStatus.CONFIRMED, quantity=mine.quantity)],
            at=changes.now,
        )
        new_booking_id = received[event_id, recipient]
        changes.record(mine, HistoryAction.TRANSFERRED)
        changes.entries.append(
            NewEntry(new_booking_id, recipient, HistoryAction.RECEIVED, mine.quantity)
        )
        changes.messages.append(
            (
                outbox.TICKET_TRANSFERRED,
                {
                    "booking_id": new_booking_id,
                    "event_id": event_id,
                    "user_id": recipient,
                    "from_booking_id": mine.id,
                    "from_user_id": user_id,
                    "quantity": mine.quantity,
                    "transferred_at": changes.now,
                },
            )
        )
        await changes.write(session)
        return Transferred(new_booking_id, recipient, mine.quantity, changes.now)
