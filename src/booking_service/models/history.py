from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.models.base import MYSQL_TABLE_OPTIONS, Base
from booking_service.models.types import BigIntId, UTCDateTime, sql_list


class HistoryAction(enum.StrEnum):
    """What happened to a claim. Each claim starts with `booked` or `waitlisted`."""

    BOOKED = "booked"  # got a ticket straight away
    WAITLISTED = "waitlisted"  # joined the line
    PROMOTED = "promoted"  # got a freed ticket from the line (instant mode)
    OFFERED = "offered"  # was offered a freed ticket from the line (offer mode)
    ACCEPTED = "accepted"  # took the offered ticket
    DECLINED = "declined"  # turned the offer down (or cancelled while it was open)
    EXPIRED = "expired"  # let the offer lapse
    LEFT = "left"  # left the line
    CANCELLED = "cancelled"  # gave the ticket back
    EVENT_CANCELLED = "event_cancelled"  # released because the organizer cancelled the event
    TRANSFERRED = "transferred"  # gave the ticket to another user
    RECEIVED = "received"  # got a ticket from another user
    CHECKED_IN = "checked_in"  # the ticket was checked in at the door


class BookingHistory(Base):
    """Append-only record of every change of every claim, written in the change's transaction.

    Rows of one event are written under its lock, so their ids follow the order of the changes.
    """

    __tablename__ = "booking_history"
    __table_args__ = (
        Index(None, "event_id", "id"),
        Index(None, "user_id", "id"),
        Index(None, "booking_id"),
        CheckConstraint(f"action IN ({sql_list(HistoryAction)})", name="action_known"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    action: Mapped[str] = mapped_column(String(16))
    # Tickets the entry concerns: the claim's, or those a partial cancel or leave gave up.
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
