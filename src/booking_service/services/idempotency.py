"""Idempotency-Key: a retried request takes effect once and gets the first answer again.

A request that carries a key runs in up to three transactions:

1. `claim`: the key's row is created, or found under its UNIQUE key (user, key). A finished
   request's answer comes back for replay; a different request under the same key is refused
   (422); one still running is refused (409) while its lease lasts.
2. The effect: the service method runs as usual and, in its own transaction, stores its answer
   with the key (`AnswerRecorder`), so the effect and its answer commit together or not at all.
   That is what makes taking over a claim whose request died (lease over, no answer) safe: its
   effect never committed. A request that outlives its lease and finds its key taken over
   rolls its effect back and answers 409: one effect, whoever wins.
3. Only if the effect failed: a refusal that depends on the request and the data (404 unknown
   event or nothing to cancel, 409 already booked) is stored like an answer, so retries keep
   getting it; any other failure (401 account closed, 409 sales not started yet, 422, 503
   busy, 500), storing such a refusal included, releases the key, so a retry runs the request
   afresh. No failure leaves an effect behind to protect.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

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
from booking_service.schemas.errors import error_body

log = logging.getLogger(__name__)

T = TypeVar("T")

# Given to a service method that must store its answer in its own transaction: called there,
# with that transaction's session and the method's result, after the effect.
ResultHook = Callable[[AsyncSession, T], Awaitable[None]]

# Refusals stored and replayed like answers: they depend on the request and the data, not on
# the moment (a 503) or the caller's credentials (a 401).
STORED_REFUSALS: tuple[type[AppError], ...] = (NotFound, Conflict)
# ...except those that only hold until a moment passes: a retry after it must run afresh.
MOMENTARY_REFUSALS: tuple[type[AppError], ...] = (SalesNotStarted,)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer as it was first sent: status and the exact JSON text of the body."""

    status: int
    body: str

    @classmethod
    def of(cls, status: int, content: Any) -> Reply:
        # Starlette's JSONResponse encoding, so a reply reads like every other answer.
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        )
        return cls(status, text)

    @classmethod
    def of_error(cls, error: AppError) -> Reply:
        return cls.of(
            error.status_code, error_body(error.message, error.code, error.details, error.fields)
        )


@dataclass(frozen=True, slots=True)
class Claim:
    key_id: int
    attempt: int


class AnswerRecorder(Generic[T]):
    """Turns the effect's result into its reply and stores it with the key, inside the
    effect's transaction."""

    def __init__(self, claim: Claim, render: Callable[[T], Reply]) -> None:
        self._claim = claim
        self._render = render
        self.reply: Reply | None = None

    async def __call__(self, session: AsyncSession, result: T) -> None:
        reply = self._render(result)
        await _store_answer(session, self._claim, reply)
        self.reply = reply


async def _store_answer(session: AsyncSession, claim: Claim, reply: Reply) -> None:
    """Keep the reply with the key, unless the claim no longer holds it: then our lease ran
    out and a retry took the key over; it answers, and our transaction is undone."""
    stored = await keys.store_answer(
        session, claim.key_id, attempt=claim.attempt, status_code=reply.status, body=reply.body
    )
    if not stored:
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

    async def run(
        self,
        *,
        user_id: int,
        key: str,
        operation: str,
        request: Mapping[str, Any],
        effect: Callable[[ResultHook[T]], Awaitable[T]],
        render: Callable[[T], Reply],
    ) -> tuple[Reply, bool]:
        """The reply to the request, and whether it is a replay of an earlier one.

        `effect(hook)` runs the service method, which calls `hook` in its transaction;
        `render` turns its result into the reply.
        """
        claimed = await self.claim(
            user_id=user_id,
            key_digest=key_digest(key),
            request_digest=request_digest(operation, request),
        )
        if isinstance(claimed, Reply):
            return claimed, True
        recorder = AnswerRecorder(claimed, render)
        try:
            await effect(recorder)
        except IdempotencyKeyInUse:
            raise
        except MOMENTARY_REFUSALS:
            await self._release(claimed)
            raise
        except STORED_REFUSALS as exc:
            reply = Reply.of_error(exc)
            try:
                await self._store(claimed, reply)
            except Exception:
                # Nothing was done and nothing stored: free the key, so that a retry runs
                # the request afresh instead of waiting out the lease.
                await self._release(claimed)
                raise
            return reply, False
        except Exception:
            await self._release(claimed)
            raise
        assert recorder.reply is not None
        return recorder.reply, False

    async def claim(self, *, user_id: int, key_digest: str, request_digest: str) -> Claim | Reply:
        """Hold the key for this request, or return the answer already stored under it."""
        for _ in range(2):
            try:
                return await run_transaction(
                    self._session,
                    lambda: self._claim(user_id, key_digest, request_digest),
                    retries=self._retries,
                )
            except IntegrityError as exc:
                # A twin created the key between our look and our INSERT: look again.
                if not is_duplicate_key(exc):
                    raise
        raise IdempotencyKeyInUse()

    async def _claim(self, user_id: int, key_digest: str, request_digest: str) -> Claim | Reply:
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
            return Claim(key_id, 1)
        if row.expires_at > now:
            if row.request_digest != request_digest:
                raise IdempotencyKeyReused()
            if row.status_code is not None:
                assert row.response_body is not None
                return Reply(row.status_code, row.response_body)
            if row.locked_until is not None and row.locked_until > now:
                raise IdempotencyKeyInUse()
            log.warning("idempotency key %s: taking over a request that never finished", row.id)
        # Expired (forgotten: a new request), or held by a request that died before its
        # effect committed: this request takes it.
        attempt = row.attempt + 1
        await keys.reclaim(session, row.id, attempt=attempt, request_digest=request_digest, **lease)
        return Claim(row.id, attempt)

    async def _store(self, claim: Claim, reply: Reply) -> None:
        await run_transaction(
            self._session,
            lambda: _store_answer(self._session, claim, reply),
            retries=self._retries,
        )

    async def _release(self, claim: Claim) -> None:
        try:
            await run_transaction(
                self._session,
                lambda: keys.release(self._session, claim.key_id, attempt=claim.attempt),
                retries=self._retries,
            )
        except Exception:  # the lease runs out instead, and a retry takes the key over
            log.warning("could not release idempotency key %s", claim.key_id, exc_info=True)

    async def purge_expired(self) -> int:
        """Delete expired keys, a batch per transaction; returns how many went."""
        return await delete_in_batches(self._session, self._purge_batch, retries=self._retries)

    async def _purge_batch(self, limit: int) -> tuple[int, int]:
        now = utcnow()
        ids = await keys.expired_ids(self._session, now=now, limit=limit)
        if not ids:
            return 0, 0
        return len(ids), await keys.delete_expired(self._session, ids, now=now)
