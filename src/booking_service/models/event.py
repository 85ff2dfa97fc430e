from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from booking_service.limits import DEFAULT_OFFER_SECONDS, MAX_OFFER_SECONDS
from booking_service.models.base import MYSQL_TABLE_OPTIONS, Base
from booking_service.models.types import BigIntId, UTCDateTime, sql_list, utcnow


class EventState(enum.StrEnum):
    OPEN = "open"  # takes bookings
    CLOSED = "closed"  # takes no new bookings; claims already made carry on
    CANCELLED = "cancelled"  # every claim released; nothing more happens


class ShownState(enum.StrEnum):
    """An event's state as clients see it: the stored state, with the sale window applied."""

    UPCOMING = "upcoming"  # open, but sales have not started yet
    OPEN = "open"
    CLOSED = "closed"  # closed by its owner, or its sales have ended
    CANCELLED = "cancelled"


def shown_state(
    state: EventState, sales_start: datetime | None, sales_end: datetime | None, now: datetime
) -> ShownState:
    if state is not EventState.OPEN:
        return ShownState(state.value)
    if sales_start is not None and now < sales_start:
        return ShownState.UPCOMING
    if sales_end is not None and now >= sales_end:
        return ShownState.CLOSED
    return ShownState.OPEN


class WaitlistMode(enum.StrEnum):
    """What happens to a freed ticket while people wait: `instant` books it for the first in
    line at once; `offer` holds it for them until they accept or decline, or until the offer
    lapses after `offer_seconds` and goes to the next in line."""

    INSTANT = "instant"  # a freed ticket is booked for the first in line at once
    OFFER = "offer"  # a freed ticket is offered to the first in line until a deadline


class Event(Base):
    """An event and its ticket counters.

    The row is the lock point for everything that happens to the event: every book, cancel,
    offer and organizer change locks it first, so the counters below are always decided under
    one lock. Counters count tickets (a party's booking holds several), except waiting_count,
    which counts entries in line: capacity = confirmed + offered_count + available, always.
    """

    __tablename__ = "event"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity_non_negative"),
        CheckConstraint("available >= 0 AND available <= capacity", name="available_in_range"),
        CheckConstraint("waiting_count >= 0", name="waiting_count_non_negative"),
        CheckConstraint("waiting_tickets >= 0", name="waiting_tickets_non_negative"),
        CheckConstraint("max_per_user >= 1", name="max_per_user_positive"),
        CheckConstraint(
            "offered_count >= 0 AND available + offered_count <= capacity",
            name="offered_count_in_range",
        ),
        CheckConstraint(f"state IN ({sql_list(EventState)})", name="state_known"),
        CheckConstraint(f"waitlist_mode IN ({sql_list(WaitlistMode)})", name="waitlist_mode_known"),
        CheckConstraint(
            f"offer_seconds >= 1 AND offer_seconds <= {MAX_OFFER_SECONDS}",
            name="offer_seconds_in_range",
        ),
        CheckConstraint(
            "sales_start IS NULL OR sales_end IS NULL OR sales_end > sales_start",
            name="sales_window_ordered",
        ),
        CheckConstraint(
            "checked_in_count >= 0 AND checked_in_count <= capacity",
            name="checked_in_count_in_range",
        ),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int] = mapped_column(Integer)
    # Free tickets: capacity minus confirmed bookings and open offers, kept in the same
    # transaction as they change.
    available: Mapped[int] = mapped_column(Integer)
    # Entries in line (a party is one); with `available` this makes /status one single-row read.
    waiting_count: Mapped[int] = mapped_column(Integer, default=0)
    # Tickets wanted by the whole line, moved in the same UPDATEs as waiting_count.
    waiting_tickets: Mapped[int] = mapped_column(Integer, server_default="0")
    # Most tickets one account may hold for the event (its party's size).
    max_per_user: Mapped[int] = mapped_column(Integer, server_default="1")
    # Next place-in-line number: a per-event sequence, so the line is FIFO by construction.
    next_line_seq: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), server_default=EventState.OPEN.value)
    waitlist_mode: Mapped[str] = mapped_column(
        String(16), server_default=WaitlistMode.INSTANT.value
    )
    # How long an offer stays open, in waitlist_mode "offer".
    offer_seconds: Mapped[int] = mapped_column(Integer, server_default=str(DEFAULT_OFFER_SECONDS))
    # Tickets held by open offers: neither available nor confirmed.
    offered_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # The sale window, judged by the database's clock: bookings are taken from sales_start
    # (if set) until sales_end (if set).
    sales_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    sales_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Whether holders may give their confirmed tickets to another user.
    transfers_allowed: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # Confirmed tickets checked in at the door.
    checked_in_count: Mapped[int] = mapped_column(Integer, server_default="0")
