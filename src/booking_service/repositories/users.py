"""Queries on users."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import execute_write, insert_returning_id
from booking_service.models import IS_LIVE, Booking, User, table_of
from booking_service.models.types import utcnow

USER_TABLE = table_of(User)  # for the accounts lock every booking group runs


async def add_user(session: AsyncSession, username: str, password_hash: str) -> int:
    return await insert_returning_id(
        session, insert(User).values(username=username, password_hash=password_hash)
    )


async def get_login(session: AsyncSession, username: str) -> tuple[int, str] | None:
    """(id, password hash) of an open account with this (lower-case) name."""
    row = (
        await session.execute(
            select(User.id, User.password_hash).where(
                User.username == username, User.deleted_at.is_(None)
            )
        )
    ).one_or_none()
    return None if row is None else (row.id, row.password_hash)


async def open_accounts(session: AsyncSession, user_ids: Collection[int]) -> set[int]:
    """Which of these users have an open account (a plain read, no lock)."""
    rows = await session.execute(
        select(User.id).where(User.id.in_(user_ids), User.deleted_at.is_(None))
    )
    return set(rows.scalars())


async def get_username(session: AsyncSession, user_id: int) -> str | None:
    found: str | None = await session.scalar(select(User.username).where(User.id == user_id))
    return found


async def open_account_for_share(session: AsyncSession, username: str) -> int | None:
    """The id of the open account with this (lower-case) name, share-locking its row until
    commit like lock_open_accounts: it cannot be closed while this transaction gives it a
    claim."""
    found: int | None = await session.scalar(
        select(User.id)
        .where(User.username == username, User.deleted_at.is_(None))
        .with_for_update(read=True)
    )
    return found


async def lock_open_accounts(session: AsyncSession, user_ids: Collection[int]) -> set[int]:
    """Which of these users have an open account, share-locking their rows until commit.

    A booking calls this after locking its event row: an account being closed holds its row
    exclusively (close_if_nothing_held), so a booking either sees it closed or keeps it open
    until the booking is committed and visible to the closing transaction.
    """
    rows = await session.execute(
        select(USER_TABLE.c.id)
        .where(USER_TABLE.c.id.in_(user_ids), USER_TABLE.c.deleted_at.is_(None))
        .with_for_update(read=True)
    )
    return set(rows.scalars())


async def get_password_hash(session: AsyncSession, user_id: int) -> str | None:
    """The password hash of this open account."""
    found: str | None = await session.scalar(
        select(User.password_hash).where(User.id == user_id, User.deleted_at.is_(None))
    )
    return found


async def close_if_nothing_held(session: AsyncSession, user_id: int) -> bool:
    """Close the account unless it holds a live ticket or place in line; True once closed.

    The user row is locked first: a booking in flight holds it share-locked (see
    lock_open_accounts) until it commits, so the look at live claims that follows, a statement
    of its own, sees every booking made for this account.
    """
    open_now = await session.scalar(
        select(User.id).where(User.id == user_id, User.deleted_at.is_(None)).with_for_update()
    )
    if open_now is None:
        return True  # closed already
    holds_something = await session.scalar(
        select(Booking.id).where(Booking.user_id == user_id, IS_LIVE).limit(1)
    )
    if holds_something is not None:
        return False
    await execute_write(session, update(User).where(User.id == user_id).values(deleted_at=utcnow()))
    return True
