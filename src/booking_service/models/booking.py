from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from booking_service.models.base import MYSQL_TABLE_OPTIONS, Base, table_of
from booking_service.models.types import BigIntId, UTCDateTime, sql_list, utcnow


class BookingStatus(enum.StrEnum):
    CONFIRMED = "confirmed"  # holds a ticket
    WAITLISTED = "waitlisted"  # holds a place in line
    OFFERED = "offered"  # holds a ticket on offer until offer_expires_at
    CANCELLED = "cancelled"  # gave the ticket back
    LEFT = "left"  # left the waiting list before getting a ticket
    DECLINED = "declined"  # turned an offer down
    EXPIRED = "expired"  # let an offer lapse
    EVENT_CANCELLED = "event_cancelled"  # released when the organizer cancelled the event
    TRANSFERRED = "transferred"  # given to another user, whose own booking holds it now


ACTIVE_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED, BookingStatus.OFFERED)
# `active` of a claim that still holds; NULL once it ended.
LIVE = 1


class Booking(Base):
    """One user's claim on one event: a ticket, an offer or a place in line, and what became of it.

    Rows are never deleted. `active` is 1 while the claim holds and NULL once it ended, so the
    UNIQUE key (event_id, user_id, active) allows any number of ended rows but only one live
    claim per user and event: MariaDB/MySQL have no partial unique index.
    """

    __tablename__ = "booking"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id", "active"),
        # Head of the waiting list, positions and confirmed counts of an event.
        Index(None, "event_id", "status", "line_seq"),
        Index(None, "user_id", "active"),
        # Lapsed offers, for the expiry sweep.
        Index(None, "status", "offer_expires_at"),
        # Check-in finds a ticket by the seed its code carries.
        UniqueConstraint("ticket_seed"),
        CheckConstraint(f"status IN ({sql_list(BookingStatus)})", name="status_known"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        # `active IS NOT NULL` first: with `active = 1` alone, a NULL active makes the whole
        # rule NULL, and a CHECK passes on NULL.
        CheckConstraint(
            f"(active IS NOT NULL AND active = 1 AND status IN ({sql_list(ACTIVE_STATUSES)}))"
            f" OR (active IS NULL AND status NOT IN ({sql_list(ACTIVE_STATUSES)}))",
            name="active_matches_status",
        ),
        CheckConstraint(
            "status <> 'waitlisted' OR line_seq IS NOT NULL", name="waitlisted_has_line_seq"
        ),
        CheckConstraint(
            "status <> 'offered' OR (offer_expires_at IS NOT NULL AND line_seq IS NOT NULL)",
            name="offered_has_deadline",
        ),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    status: Mapped[str] = mapped_column(String(16))
    active: Mapped[int | None] = mapped_column(SmallInteger, default=LIVE)
    # Tickets of the claim: confirmed, offered or wanted in line; all or nothing. A partial
    # cancel lowers it in place.
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")
    # Place-in-line number from event.next_line_seq; kept after promotion for the record.
    line_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Deadline of the latest offer; kept after it was accepted, declined or lapsed.
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The random half of the ticket code (hex); the other half is a tag keyed with a secret the
    # database never sees (services/ticket_codes.py), so a leaked table yields no valid code.
    ticket_seed: Mapped[str | None] = mapped_column(String(32), default=None)
    # When the ticket was checked in at the door; a checked-in ticket cannot be given back.
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


# "The claim still holds": the one spelling of it in every query. On the table's column, so
# that statements written on the table's columns stay plain SQL (see table_of).
IS_LIVE: ColumnElement[bool] = table_of(Booking).c.active == LIVE
