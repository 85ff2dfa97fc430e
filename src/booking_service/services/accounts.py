"""Closing an account: give back every ticket and place in line, then close it."""

from __future__ import annotations

import contextlib

from booking_service.errors import NothingToCancel, ServiceBusy
from booking_service.services.auth import AuthService
from booking_service.services.bookings import BookingService

# Rounds of "cancel everything, then close if nothing is left" before giving up: only a client
# booking with the same account at that very moment makes a second round necessary.
CLOSE_ROUNDS = 3


class AccountService:
    def __init__(self, *, auth: AuthService, bookings: BookingService) -> None:
        self._auth = auth
        self._bookings = bookings

    async def close(self, user_id: int, password: str) -> None:
        """Several transactions, each complete on its own: every claim is cancelled like any
        cancel (locking its event first, promoting whoever waits), then the account closes
        only if it holds nothing. A failure part-way leaves an open account: just retry."""
        await self._auth.check_password(user_id, password)
        for _ in range(CLOSE_ROUNDS):
            for claim in await self._bookings.list_mine(user_id):
                with contextlib.suppress(NothingToCancel):  # cancelled meanwhile
                    await self._bookings.cancel(user_id=user_id, event_id=claim.event_id)
            if await self._auth.close_account(user_id):
                return
        raise ServiceBusy()
