"""Deleting what has served its time: expired idempotency keys, old outbox messages."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from booking_service.config import Settings
from booking_service.services.idempotency import IdempotencyService
from booking_service.services.webhooks import purge_outbox

log = logging.getLogger(__name__)


async def tidy(session_factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """One round. Safe in every worker at once: each delete re-checks what it deletes. Each
    purge runs whatever happened to the other: a failed one is logged and tried next round."""
    keys = messages = 0
    async with session_factory() as session:
        try:
            keys = await IdempotencyService(
                session,
                ttl_seconds=settings.idempotency_key_ttl_seconds,
                lease_seconds=settings.idempotency_lease_seconds,
                lock_retries=settings.db_lock_retries,
            ).purge_expired()
        except Exception:
            log.exception("housekeeping: deleting expired idempotency keys failed")
        try:
            messages = await purge_outbox(session, settings)
        except Exception:
            log.exception("housekeeping: deleting old outbox messages failed")
    if keys or messages:
        log.info(
            "housekeeping: %d expired idempotency keys, %d old messages deleted", keys, messages
        )
