from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.db import MYSQL_TABLE_OPTIONS, Base
from booking_service.models.types import BigIntId, UTCDateTime, utcnow


class BookingStatus(enum.StrEnum):
    CONFIRMED = "confirmed"  # holds a ticket
    WAITLISTED = "waitlisted"  # holds a place in line
    CANCELLED = "cancelled"  # gave the ticket back
    LEFT = "left"  # left the line before getting a ticket


ACTIVE_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED)


def _sql_list(statuses: tuple[BookingStatus, ...]) -> str:
    return ", ".join(f"'{status.value}'" for status in statuses)


class Booking(Base):
    """One user's claim on one event: a ticket or a place in line, and what became of it.

    Rows are never deleted. `active` is 1 while the claim holds and NULL once it ended, so the
    UNIQUE key (event_id, user_id, active) allows any number of ended rows but only one live
    claim per user and event: MariaDB/MySQL have no partial unique index.
    """

    __tablename__ = "booking"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id", "active"),
        # Head of the line, positions and confirmed counts of an event.
        Index(None, "event_id", "status", "line_seq"),
        Index(None, "user_id", "active"),
        CheckConstraint(
            f"status IN ({_sql_list(tuple(BookingStatus))})",
            name="status_known",
        ),
        CheckConstraint(
            f"(active = 1 AND status IN ({_sql_list(ACTIVE_STATUSES)}))"
            f" OR (active IS NULL AND status NOT IN ({_sql_list(ACTIVE_STATUSES)}))",
            name="active_matches_status",
        ),
        CheckConstraint(
            "status <> 'waitlisted' OR line_seq IS NOT NULL", name="waitlisted_has_line_seq"
        ),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    status: Mapped[str] = mapped_column(String(16))
    active: Mapped[int | None] = mapped_column(SmallInteger, default=1)
    # Place-in-line number from event.next_line_seq; kept after promotion for the record.
    line_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
