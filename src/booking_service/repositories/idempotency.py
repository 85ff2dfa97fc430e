"""Queries on idempotency keys. The key row is locked on its own (holding it) or last, after the
effect's own locks (storing the answer), so it never takes part in a lock cycle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import execute_write, insert_returning_id
from booking_service.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class LockedKey:
    id: int
    request_digest: str
    attempt: int
    locked_until: datetime | None
    status_code: int | None
    response_body: str | None
    expires_at: datetime


async def get_for_update(
    session: AsyncSession, *, user_id: int, key_digest: str
) -> LockedKey | None:
    row = (
        await session.execute(
            select(
                IdempotencyKey.id,
                IdempotencyKey.request_digest,
                IdempotencyKey.attempt,
                IdempotencyKey.locked_until,
                IdempotencyKey.status_code,
                IdempotencyKey.response_body,
                IdempotencyKey.expires_at,
            )
            .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key_digest == key_digest)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else LockedKey(*row)


async def add(
    session: AsyncSession,
    *,
    user_id: int,
    key_digest: str,
    request_digest: str,
    now: datetime,
    locked_until: datetime,
    expires_at: datetime,
) -> int:
    """A new key, held by its first hold (attempt 1). A concurrent twin fails on the UNIQUE key."""
    return await insert_returning_id(
        session,
        insert(IdempotencyKey).values(
            user_id=user_id,
            key_digest=key_digest,
            request_digest=request_digest,
            attempt=1,
            locked_until=locked_until,
            created_at=now,
            expires_at=expires_at,
        ),
    )


async def take_over(
    session: AsyncSession,
    key_id: int,
    *,
    attempt: int,
    request_digest: str,
    now: datetime,
    locked_until: datetime,
    expires_at: datetime,
) -> None:
    """Hand a locked key row to a new hold, forgetting any answer it kept."""
    await execute_write(
        session,
        update(IdempotencyKey)
        .where(IdempotencyKey.id == key_id)
        .values(
            attempt=attempt,
            request_digest=request_digest,
            locked_until=locked_until,
            status_code=None,
            response_body=None,
            created_at=now,
            expires_at=expires_at,
        ),
    )


async def store_answer(
    session: AsyncSession, key_id: int, *, attempt: int, status_code: int, body: str
) -> bool:
    """Store the answer, if this hold still has the key; False if another hold took it."""
    result = await execute_write(
        session,
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == key_id,
            IdempotencyKey.attempt == attempt,
            IdempotencyKey.status_code.is_(None),
        )
        .values(status_code=status_code, response_body=body, locked_until=None),
    )
    return result.rowcount == 1


async def release(session: AsyncSession, key_id: int, *, attempt: int) -> None:
    """Forget a key whose request had no answer worth keeping, if this hold still has it."""
    await execute_write(
        session,
        delete(IdempotencyKey).where(
            IdempotencyKey.id == key_id,
            IdempotencyKey.attempt == attempt,
            IdempotencyKey.status_code.is_(None),
        ),
    )


async def expired_ids(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[int]:
    rows = await session.execute(
        select(IdempotencyKey.id).where(IdempotencyKey.expires_at <= now).limit(limit)
    )
    return list(rows.scalars())


async def delete_expired(session: AsyncSession, ids: Sequence[int], *, now: datetime) -> int:
    """Delete these keys if they are still expired (a new hold may have renewed one meanwhile)."""
    result = await execute_write(
        session,
        delete(IdempotencyKey).where(IdempotencyKey.id.in_(ids), IdempotencyKey.expires_at <= now),
    )
    return result.rowcount
