"""Delivering the outbox: every worker runs one loop that posts due messages to WEBHOOK_URL.

Each round leases a batch of due messages in one short transaction (the lease: other workers and
replicas skip them until it ends), posts them with no transaction open, then records each
outcome in a transaction of its own: delivered, or due again after an exponential backoff
with jitter, or given up after WEBHOOK_MAX_ATTEMPTS. A worker that dies mid-post leaves a
lease that simply runs out, and another worker posts the message again. So delivery is at
least once: receivers drop repeats by the `X-Booking-Message-Id` header. Nothing here can fail
a booking: the loop only reads and updates outbox rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.config import Settings
from booking_service.db import delete_in_batches, run_transaction
from booking_service.models.types import utcnow
from booking_service.repositories import outbox
from booking_service.repositories.outbox import LeasedMessage

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Booking-Signature"
MESSAGE_ID_HEADER = "X-Booking-Message-Id"
MESSAGE_TYPE_HEADER = "X-Booking-Message-Type"
# Time beyond the POST's own timeout before a lease runs out.
LEASE_MARGIN_SECONDS = 30.0


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    """Wait after the `attempts`-th failure: base, 2 base, 4 base ... up to cap, each drawn
    between half and all of it, so workers that failed together do not retry together."""
    ceiling = min(cap, base * 2 ** min(attempts - 1, 60))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    error: str = ""


class WebhookSender:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: httpx.AsyncClient,
    ) -> None:
        assert settings.webhook_url is not None
        assert settings.webhook_secret is not None
        self._session_factory = session_factory
        self._url = settings.webhook_url
        self._secret = settings.webhook_secret.get_secret_value()
        self._settings = settings
        self._http = http
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)

    async def run_forever(self) -> None:
        poll = self._settings.webhook_poll_seconds
        while True:
            try:
                sent = await self.deliver_due()
            except Exception:  # the database is down, say: keep trying, never die
                log.exception("webhook delivery round failed")
                sent = 0
            if sent == 0:
                await asyncio.sleep(random.uniform(poll / 2, poll))  # noqa: S311 - jitter

    async def deliver_due(self) -> int:
        """One round: lease due messages, post them, record the outcomes. Returns how many."""
        async with self._session_factory() as session:
            if not await run_transaction(
                session,
                lambda: outbox.any_due(session, now=utcnow()),
                retries=self._settings.db_lock_retries,
                read_only=True,
            ):
                return 0
            token = secrets.token_hex(16)

            async def lease() -> list[LeasedMessage]:
                now = utcnow()
                return await outbox.lease_due(
                    session,
                    now=now,
                    lease_until=now + self._lease,
                    token=token,
                    limit=self._settings.webhook_batch_size,
                )

            leased = await run_transaction(session, lease, retries=self._settings.db_lock_retries)
        outcomes = await asyncio.gather(*(self._post(message) for message in leased))
        for message, outcome in zip(leased, outcomes, strict=True):
            try:
                await self._record(message, outcome, token)
            except Exception:  # its lease runs out and the message is posted again
                log.exception("could not record the outcome of webhook %s", message.message_id)
        return len(leased)

    async def _post(self, message: LeasedMessage) -> Outcome:
        body = message.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "booking-service-webhooks",
            MESSAGE_ID_HEADER: message.message_id,
            MESSAGE_TYPE_HEADER: message.kind,
            SIGNATURE_HEADER: sign(self._secret, body),
        }
        try:
            # One deadline for the whole POST: httpx's timeout applies to each read or write.
            async with asyncio.timeout(self._settings.webhook_timeout_seconds):
                # Streamed, the body never read: only the status matters.
                async with self._http.stream(
                    "POST", self._url, content=body, headers=headers
                ) as response:
                    status = response.status_code
        except (httpx.HTTPError, TimeoutError) as exc:
            return Outcome(delivered=False, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # Not an HTTP failure we know: still this message's alone. Raised into the gather
            # of the batch, it would leave the others' outcomes unrecorded (and posted again).
            log.exception("posting webhook %s failed unexpectedly", message.message_id)
            return Outcome(delivered=False, error=f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Outcome(delivered=True)
        return Outcome(delivered=False, error=f"HTTP {status}")

    async def _record(self, message: LeasedMessage, outcome: Outcome, token: str) -> None:
        settings = self._settings
        async with self._session_factory() as session:
            if outcome.delivered:
                await run_transaction(
                    session,
                    lambda: outbox.mark_delivered(session, message.id, now=utcnow()),
                    retries=settings.db_lock_retries,
                )
                return
            retry_at: datetime | None = None
            now = utcnow()
            if message.attempts < settings.webhook_max_attempts:
                delay = backoff_seconds(
                    message.attempts,
                    base=settings.webhook_backoff_seconds,
                    cap=settings.webhook_backoff_max_seconds,
                )
                retry_at = now + timedelta(seconds=delay)
                log.info(
                    "webhook %s attempt %d failed (%s), next in %.1fs",
                    message.message_id,
                    message.attempts,
                    outcome.error,
                    delay,
                )
            else:
                log.error(
                    "webhook %s given up after %d attempts: %s",
                    message.message_id,
                    message.attempts,
                    outcome.error,
                )
            await run_transaction(
                session,
                lambda: outbox.mark_failed(
                    session,
                    message.id,
                    token=token,
                    error=outcome.error,
                    retry_at=retry_at,
                    now=now,
                ),
                retries=settings.db_lock_retries,
            )


async def purge_outbox(session: AsyncSession, settings: Settings) -> int:
    """Delete messages delivered more than OUTBOX_RETENTION_HOURS ago and, when no
    WEBHOOK_URL is configured (nobody will deliver them), messages written that long ago.
    Messages given up are kept for an operator to look at. A batch per transaction."""

    async def batch(limit: int) -> tuple[int, int]:
        cutoff = utcnow() - timedelta(hours=settings.outbox_retention_hours)
        ids = await outbox.purgeable_ids(
            session,
            delivered_before=cutoff,
            created_before=None if settings.webhook_url else cutoff,
            limit=limit,
        )
        return len(ids), (await outbox.delete_ids(session, ids) if ids else 0)

    return await delete_in_batches(session, batch, retries=settings.db_lock_retries)
