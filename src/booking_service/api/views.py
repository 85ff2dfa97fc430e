"""Service results turned into response models, where several routers share the shape."""

from __future__ import annotations

from collections.abc import Sequence

from booking_service.repositories.history import HistoryItem
from booking_service.schemas.history import HistoryEntry, HistoryPage


def history_page(
    entries: Sequence[HistoryItem], total: int, *, limit: int, offset: int
) -> HistoryPage:
    return HistoryPage(
        items=[
            HistoryEntry(
                history_id=entry.id,
                booking_id=entry.booking_id,
                event_id=entry.event_id,
                event_name=entry.event_name,
                user_id=entry.user_id,
                username=entry.username,
                action=entry.action.value,
                created_at=entry.created_at,
            )
            for entry in entries
        ],
        total=total,
        limit=limit,
        offset=offset,
    )
