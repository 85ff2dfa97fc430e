"""The webhook outbox: messages written in the caller's transaction, leased for delivery.

To announce something, call `enqueue_many` inside the transaction that makes the change
(EventChanges.write does): the message exists exactly when the change does. The delivery loop
(services/webhooks.py) does the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import execute_write
from booking_service.models import OutboxMessage
from booking_service.models.types import utcnow

# Kinds of message, as receivers see them in the body's `type` and a header.
BOOKING_PROMOTED = "booking.promoted"
BOOKING_OFFERED = "booking.offered"
TICKET_TRANSFERRED = "ticket.transferred"


def _new_row(kind: str, data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    envelope = {"id": message_id, "type": kind, "created_at": now, "data": dict(data)}
    return {
        "message_id": message_id,
        "kind": kind,
        # Datetimes as ISO 8601 with `Z`, like the API's; rendered once, posted as is.
        "body": to_json(envelope).decode(),
        "created_at": now,
        "due_at": now,
        "attempts": 0,
    }


async def enqueue_many(
    session: AsyncSession, messages: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[str]:
    """Write several (kind, data) messages in one statement, in the caller's transaction.

    `data` is anything pydantic can render as JSON (datetimes must be timezone-aware).
    """
    if not messages:
        return []
    now = utcnow()
    rows = [_new_row(kind, data, now) for kind, data in messages]
    await session.execute(insert(OutboxMessage), rows)
    return [row["message_id"] for row in rows]


@dataclass(frozen=True, slots=True)
class LeasedMessage:
    id: int
    message_id: str
    kind: str
    body: str
    attempts: int  # this attempt included


async def any_due(session: AsyncSession, *, now: datetime) -> bool:
    """A lock-free look, so an idle worker never takes a write lock just to find nothing."""
    row = await session.scalar(select(OutboxMessage.id).where(OutboxMessage.due_at <= now).limit(1))
    return row is not None


async def lease_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, token: str, limit: int
) -> list[LeasedMessage]:
    """Lease up to `limit` due messages to `token`: other workers skip them until
    `lease_until`. SKIP LOCKED (MariaDB/MySQL) passes over rows another worker is leasing;
    SQLite's BEGIN IMMEDIATE lets one worker lease at a time. The UPDATE checks `due_at` again,
    so a row is leased to one worker only either way."""
    ids = list(
        (
            await session.execute(
                select(OutboxMessage.id)
                .where(OutboxMessage.due_at <= now)
                .order_by(OutboxMessage.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not ids:
        return []
    await execute_write(
        session,
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.due_at <= now)
        .values(due_at=lease_until, lease_token=token, attempts=OutboxMessage.attempts + 1),
    )
    rows = await session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.message_id,
            OutboxMessage.kind,
            OutboxMessage.body,
            OutboxMessage.attempts,
        )
        .where(OutboxMessage.id.in_(ids), OutboxMessage.lease_token == token)
        .order_by(OutboxMessage.id)
    )
    return [LeasedMessage(*row) for row in rows]


async def mark_delivered(session: AsyncSession, message_id: int, *, now: datetime) -> bool:
    """Record the delivery, once. Not tied to the lease: a receiver's 2xx is a fact even if
    our lease ran out meanwhile. False if it was already recorded."""
    result = await execute_write(
        session,
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.delivered_at.is_(None))
        .values(delivered_at=now, due_at=None, lease_token=None, gave_up_at=None),
    )
    return result.rowcount == 1


async def mark_failed(
    session: AsyncSession,
    message_id: int,
    *,
    token: str,
    error: str,
    retry_at: datetime | None,
    now: datetime,
) -> None:
    """Schedule the next attempt at `retry_at`, or give up when it is None. Only the worker
    holding the lease decides, and never about a delivered message."""
    values: dict[str, Any] = {"lease_token": None, "last_error": error[:500]}
    if retry_at is None:
        values.update(due_at=None, gave_up_at=now)
    else:
        values.update(due_at=retry_at)
    await execute_write(
        session,
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.lease_token == token,
            OutboxMessage.delivered_at.is_(None),
        )
        .values(**values),
    )


async def purgeable_ids(
    session: AsyncSession,
    *,
    delivered_before: datetime,
    created_before: datetime | None,
    limit: int,
) -> Sequence[int]:
    """Messages delivered before `delivered_before`; with `created_before`, also messages
    still waiting (when no URL is configured, nobody will deliver them) written before it.
    Messages given up are never purged: an operator decides."""
    condition = OutboxMessage.delivered_at < delivered_before
    if created_before is not None:
        condition = or_(
            condition,
            OutboxMessage.due_at.is_not(None) & (OutboxMessage.created_at < created_before),
        )
    rows = await session.execute(select(OutboxMessage.id).where(condition).limit(limit))
    return list(rows.scalars())


async def delete_ids(session: AsyncSession, ids: Sequence[int]) -> int:
    result = await execute_write(session, delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    return result.rowcount
