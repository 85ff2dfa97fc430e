from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.models.base import MYSQL_TABLE_OPTIONS, Base
from booking_service.models.types import BigIntId, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "user"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # Stored lower-case: usernames are case-insensitive on every database.
    username: Mapped[str] = mapped_column(String(50), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Accounts are closed, not deleted, so their booking history stays on record.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
