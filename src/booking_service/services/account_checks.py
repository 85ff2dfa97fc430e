"""Whether a token's account is still open: per worker, a recent yes is trusted, and the
accounts of concurrent requests this worker has not seen lately are looked up together.

Tokens are stateless, but a closed account must stop working, so the guard asks the database
unless the answer is cached. In a flash sale tens of thousands of people open the event page
at once, each for the first time: one query per request would cost more than the page. So a
lookup runs at once for a lone request, and the requests that arrive while it is in flight
wait and go together in the next one (one `IN (...)` query), the way the coalescer groups
bookings. Each request gets its own answer; a failure of the shared query is every waiter's.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.db import run_transaction
from booking_service.errors import AccountGone
from booking_service.repositories import users
from booking_service.services.waiting import GroupDrain, Waiting

# Most accounts one lookup asks for: the IN list stays a modest statement.
LOOKUP_MAX = 500


class ActiveUserCache:
    """Remembers, per worker and for a few seconds, which user ids have an open account.

    Only "open" answers are cached, each dated from before the query that gave it, so a closed
    account is refused at most `ttl_seconds` after it closed (0 disables the cache).
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._expiry: dict[int, float] = {}

    def is_known_active(self, user_id: int) -> bool:
        expiry = self._expiry.get(user_id)
        return expiry is not None and expiry > time.monotonic()

    def remember_active(self, user_ids: set[int], checked_at: float) -> None:
        """`checked_at`: time.monotonic() before the query that found them open."""
        if self._ttl <= 0:
            return
        if len(self._expiry) + len(user_ids) > self._max_entries:
            self._expiry.clear()
        expiry = checked_at + self._ttl
        for user_id in user_ids:
            self._expiry[user_id] = expiry

    def forget(self, user_id: int) -> None:
        self._expiry.pop(user_id, None)

    def clear(self) -> None:
        self._expiry.clear()


_Waiting = Waiting[int, bool]  # a user id, and whether its account is open


class AccountChecks:
    """One per worker, beside its ActiveUserCache (which close_account also updates)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        cache: ActiveUserCache,
        *,
        lock_retries: int,
    ) -> None:
        self._cache = cache
        self._retries = lock_retries
        # The lookups serve many requests: their log lines carry nobody's request id.
        self._waiting = GroupDrain(
            session_factory,
            self._answer,
            lambda: LOOKUP_MAX,
            name="account checks",
            own_context=True,
        )
        self.lookups = 0  # queries run, the causal re-checks included

    async def ensure_open(self, user_id: int) -> None:
        """AccountGone unless this account is open."""
        if self._cache.is_known_active(user_id):
            return
        if not await self._waiting.answer(user_id):
            raise AccountGone()

    async def _answer(self, session: AsyncSession, group: list[_Waiting]) -> None:
        checked_at = time.monotonic()
        try:
            wanted = {waiting.request for waiting in group}
            found = await self._open_accounts(session, wanted, causal=False)
            if missing := wanted - found:
                # On a cluster this node may not have these accounts yet: ask again, causally,
                # before refusing. Known accounts (nearly every lookup) never pay for it.
                found |= await self._open_accounts(session, missing, causal=True)
        except Exception as exc:  # nobody's answer is known: each request fails with it
            for waiting in group:
                waiting.resolve(exc)
            return
        self._cache.remember_active(found, checked_at)
        for waiting in group:
            waiting.resolve(waiting.request in found)

    async def _open_accounts(
        self, session: AsyncSession, user_ids: set[int], *, causal: bool
    ) -> set[int]:
        self.lookups += 1
        return await run_transaction(
            session,
            lambda: users.open_accounts(session, user_ids),
            retries=self._retries,
            read_only=True,
            causal=causal,
        )
