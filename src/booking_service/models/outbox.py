from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.models.base import MYSQL_TABLE_OPTIONS, Base
from booking_service.models.types import BigIntId, UTCDateTime, utcnow


class OutboxMessage(Base):
    """A webhook message, written in the same transaction as the change it announces.

    `body` is the JSON posted, rendered once, so every attempt sends (and signs) the same
    bytes. `due_at` is when the next attempt may start: a worker that leases the row pushes it
    to the end of its lease (`lease_token` says whose lease), a failure pushes it back by the
    backoff, and it is NULL once the message is delivered or given up.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index(None, "due_at"),
        Index(None, "delivered_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # Sent as a header with every attempt, so receivers can drop a message they already had.
    message_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
