"""The one error envelope every 4xx and 5xx answer uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from booking_service.schemas.common import RESPONSE_CONFIG


class ErrorDetail(BaseModel):
    """One problem with one part of the request."""

    model_config = RESPONSE_CONFIG

    loc: list[str | int] = Field(
        description="Where the problem is, e.g. `['body', 'eventId']`.",
        examples=[["body", "eventId"]],
    )
    msg: str = Field(
        description="What is wrong there.", examples=["Input should be a valid integer"]
    )
    type: str = Field(description="Machine-readable kind of problem.", examples=["int_type"])


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Human-readable explanation.", examples=["Event not found"])
    code: str = Field(
        description="Stable machine-readable error code.", examples=["event_not_found"]
    )
    details: list[ErrorDetail] | None = Field(
        default=None,
        description="Per-field problems, for validation errors only; otherwise null.",
        examples=[[{"loc": ["body", "eventId"], "msg": "Field required", "type": "missing"}]],
    )
    # Present only with the codes that name a moment; absent (not null) otherwise.
    sales_start: datetime | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="With `sales_not_started` only: when sales open (UTC).",
        examples=["2025-06-01T18:00:00Z"],
    )
    checked_in_at: datetime | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="With `already_checked_in` only: when the ticket was first checked in (UTC).",
        examples=["2025-06-01T18:30:00.123456Z"],
    )


def error_body(
    message: str,
    code: str,
    details: Sequence[ErrorDetail] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The envelope as JSON: what every error answer carries (and what a stored refusal
    replays)."""
    return ErrorResponse(
        message=message, code=code, details=list(details) if details else None, **(fields or {})
    ).model_dump(mode="json")
