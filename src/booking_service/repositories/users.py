"""Queries on users."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from booking_service.db import insert_returning_id
from booking_service.models import User


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
