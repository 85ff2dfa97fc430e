"""Queries on users."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import execute_write, insert_returning_id
from booking_service.models import Booking, User
from booking_service.models.types import utcnow


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


async def is_active(session: AsyncSession, user_id: int) -> bool:
    found = await session.scalar(
        select(User.id).where(User.id == user_id, User.deleted_at.is_(None))
    )
    return found is not None


async def get_password_hash(session: AsyncSession, user_id: int) -> str | None:
    """The password hash of this open account."""
    found: str | None = await session.scalar(
        select(User.password_hash).where(User.id == user_id, User.deleted_at.is_(None))
    )
    return found


async def close_if_nothing_held(session: AsyncSession, user_id: int) -> bool:
    """Close the account unless it holds a live ticket or place in line; True once closed.

    The update locks the user row, which every new booking's foreign key check also needs.
    """
    holds_something = (
        select(Booking.id).where(Booking.user_id == user_id, Booking.active == 1).exists()
    )
    result = await execute_write(
        session,
        update(User)
        .where(User.id == user_id, User.deleted_at.is_(None), ~holds_something)
        .values(deleted_at=utcnow()),
    )
    return result.rowcount == 1 or not await is_active(session, user_id)
