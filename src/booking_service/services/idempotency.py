"""Idempotency-Key: a retried request takes effect once and gets the first answer again.

A request that carries a key runs in up to three transactions:

1. `hold`: the key's row is created, or found under its UNIQUE key (user, key). A finished
   request's answer comes back for replay (`HeldKey.kept`); a different request under the same
   key is refused (422); one still running is refused (409) while its hold lasts (the lease).
2. The effect: the service method runs as usual and, in its own transaction, keeps its result
   with the key (`keep_result`), so the effect and its answer commit together or not at all.
   That is what makes taking over a key whose request died (lease over, no answer) safe: its
   effect never committed. A request that outlives its lease and finds its key taken over
   rolls its effect back and answers 409: one effect, whoever wins.
3. Only if the effect failed: a refusal that depends on the request and the data (404 unknown
   event or nothing to cancel, 409 already booked) is kept like an answer (`keep_refusal`), so
   retries keep getting it; any other failure (401 account closed, 409 sales not started yet,
   422, 503 busy, 500), keeping such a refusal included, releases the key (`release`), so a
   retry runs the request afresh. No failure leaves an effect behind to protect.

A result is kept as the service returned it, and its route renders it for every retry as it
did the first time (the same request, so the same answer); a refusal is kept as it was sent.
Nothing here knows HTTP beyond the status number a refusal was sent with.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import delete_in_batches, is_duplicate_key, run_transaction
from booking_service.errors import (
    AppError,
    Conflict,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotFound,
    SalesNotStarted,
)
from booking_service.models.types import utcnow
from booking_service.repositories import idempotency as keys

log = logging.getLogger(__name__)

# Refusals kept and replayed like answers: they depend on the request and the data, not on
# the moment (a 503) or the caller's credentials (a 401).
STORED_REFUSALS: tuple[type[AppError], ...] = (NotFound, Conflict)
# ...except those that only hold until a moment passes: a retry after it must run afresh.
MOMENTARY_REFUSALS: tuple[type[AppError], ...] = (SalesNotStarted,)

# The status kept with a result: none yet, its route renders it (a refusal keeps the one it
# was sent with).
RESULT = 0


def is_stored_refusal(error: BaseException) -> bool:
    return isinstance(error, STORED_REFUSALS) and not isinstance(error, MOMENTARY_REFUSALS)


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """What a finished request left with its key: a result (`status` RESULT, `text` the JSON
    its service kept), or a refusal as it was sent (its status, `text` the exact body)."""

    status: int
    text: str

    @property
    def result(self) -> Any:
        assert self.status == RESULT
        return json.loads(self.text)


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A request's key, held for it by hold number `attempt` (only the hold that has the key
    may keep an answer); or, for a retry of a finished request, what that one left (`kept`)."""

    key_id: int
    attempt: int
    kept: KeptAnswer | None = None

    async def keep_result(self, session: AsyncSession, result: Any) -> None:
        """Keep the effect's result with the key, in the effect's own transaction."""
        await _keep(session, self, KeptAnswer(RESULT, json.dumps(result)))


async def _keep(session: AsyncSession, key: HeldKey, answer: KeptAnswer) -> None:
    """Keep the answer with the key, unless this hold no longer has it: then our lease ran
    out and a retry took the key over; it answers, and our transaction is undone."""
    kept = await keys.store_answer(
        session, key.key_id, attempt=key.attempt, status_code=answer.status, body=answer.text
    )
    if not kept:
        raise IdempotencyKeyInUse()


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def request_digest(operation: str, request: Mapping[str, Any]) -> str:
    """The same request: the same operation and the same body once validated (so key order,
    spacing or `1.0` for `1` make no difference)."""
    text = json.dumps([operation, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class IdempotencyService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        ttl_seconds: float,
        lease_seconds: float,
        lock_retries: int,
    ) -> None:
        self._session = session
        self._ttl = timedelta(seconds=ttl_seconds)
        self._lease = timedelta(seconds=lease_seconds)
        self._retries = lock_retries

    async def hold(self, *, user_id: int, key_digest: str, request_digest: str) -> HeldKey:
        """Hold the key for this request, or find what the request that finished under it
        left (`kept`)."""
        for _ in range(2):
            try:
                return await run_transaction(
                    self._session,
                    lambda: self._hold(user_id, key_digest, request_digest),
                    retries=self._retries,
                )
            except IntegrityError as exc:
                # A twin created the key between our look and our INSERT: look again.
                if not is_duplicate_key(exc):
                    raise
        raise IdempotencyKeyInUse()

    async def _hold(self, user_id: int, key_digest: str, request_digest: str) -> HeldKey:
        session = self._session
        now = utcnow()
        lease = {"now": now, "locked_until": now + self._lease, "expires_at": now + self._ttl}
        row = await keys.get_for_update(session, user_id=user_id, key_digest=key_digest)
        if row is None:
            key_id = await keys.add(
                session,
                user_id=user_id,
                key_digest=key_digest,
                request_digest=request_digest,
                **lease,
            )
            return HeldKey(key_id, 1)
        if row.expires_at > now:
            if row.request_digest != request_digest:
                raise IdempotencyKeyReused()
            if row.status_code is not None:
                assert row.response_body is not None
                return HeldKey(row.id, row.attempt, KeptAnswer(row.status_code, row.response_body))
            if row.locked_until is not None and row.locked_until > now:
                raise IdempotencyKeyInUse()
            log.warning("idempotency key %s: taking over a request that never finished", row.id)
        # Expired (forgotten: a new request), or held by a request that died before its
        # effect committed: this request takes it.
        attempt = row.attempt + 1
        await keys.take_over(
            session, row.id, attempt=attempt, request_digest=request_digest, **lease
        )
        return HeldKey(row.id, attempt)

    async def keep_refusal(self, key: HeldKey, status: int, body: str) -> None:
        """Keep a refusal as it is sent; if that fails, free the key (nothing was done and
        nothing kept, so a retry runs the request afresh instead of waiting out the lease)."""
        try:
            await run_transaction(
                self._session,
                lambda: _keep(self._session, key, KeptAnswer(status, body)),
                retries=self._retries,
            )
        except Exception:
            await self.release(key)
            raise

    async def release(self, key: HeldKey) -> None:
        try:
            await run_transaction(
                self._session,
                lambda: keys.release(self._session, key.key_id, attempt=key.attempt),
                retries=self._retries,
            )
        except Exception:  # the lease runs out instead, and a retry takes the key over
            log.warning("could not release idempotency key %s", key.key_id, exc_info=True)

    async def purge_expired(self) -> int:
        """Delete expired keys, a batch per transaction; returns how many went."""
        return await delete_in_batches(self._session, self._purge_batch, retries=self._retries)

    async def _purge_batch(self, limit: int) -> tuple[int, int]:
        now = utcnow()
        ids = await keys.expired_ids(self._session, now=now, limit=limit)
        if not ids:
            return 0, 0
        return len(ids), await keys.delete_expired(self._session, ids, now=now)
