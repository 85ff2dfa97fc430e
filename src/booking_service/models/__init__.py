"""SQLAlchemy tables. Importing this package registers every table on `Base.metadata`."""

from booking_service.models.base import table_of
from booking_service.models.booking import ACTIVE_STATUSES, IS_LIVE, LIVE, Booking, BookingStatus
from booking_service.models.event import Event, EventState, WaitlistMode
from booking_service.models.history import BookingHistory, HistoryAction
from booking_service.models.idempotency import IdempotencyKey
from booking_service.models.outbox import OutboxMessage
from booking_service.models.user import User

__all__ = [
    "ACTIVE_STATUSES",
    "IS_LIVE",
    "LIVE",
    "Booking",
    "BookingHistory",
    "BookingStatus",
    "Event",
    "EventState",
    "HistoryAction",
    "IdempotencyKey",
    "OutboxMessage",
    "User",
    "WaitlistMode",
    "table_of",
]
