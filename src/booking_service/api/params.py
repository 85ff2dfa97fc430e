"""Path and query parameters shared by several routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from booking_service.schemas.common import MAX_DB_ID

EventIdPath = Annotated[
    int,
    Path(
        alias="eventId",
        title="Event id",
        ge=1,
        le=MAX_DB_ID,
        description="The event's id.",
        examples=[1],
    ),
]
PageLimit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
PageOffset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")]
