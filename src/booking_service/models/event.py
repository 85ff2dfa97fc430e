from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.db import MYSQL_TABLE_OPTIONS, Base
from booking_service.models.types import BigIntId, UTCDateTime, utcnow


class Event(Base):
    """An event and its ticket counters.

    The row is the lock point for everything that happens to the event: every book or cancel
    locks it first, so the counters below are always decided under one lock.
    """

    __tablename__ = "event"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity_non_negative"),
        CheckConstraint("available >= 0 AND available <= capacity", name="available_in_range"),
        CheckConstraint("waiting_count >= 0", name="waiting_count_non_negative"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int] = mapped_column(Integer)
    # Free tickets: capacity minus confirmed bookings, kept in the same transaction as they change.
    available: Mapped[int] = mapped_column(Integer)
    # People in line; with `available` this makes /status one single-row read.
    waiting_count: Mapped[int] = mapped_column(Integer, default=0)
    # Next place-in-line number: a per-event sequence, so the line is FIFO by construction.
    next_line_seq: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
