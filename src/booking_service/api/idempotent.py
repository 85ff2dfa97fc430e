"""The Idempotency-Key header, and answering a request once whether or not it carries one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Header, Request
from pydantic import BaseModel
from starlette.responses import Response

from booking_service.deps import get_idempotency_service
from booking_service.openapi import REPLAYED_HEADER
from booking_service.services.idempotency import Reply, ResultHook

T = TypeVar("T")

KEY_MAX_LENGTH = 255
# Visible ASCII, no spaces: what survives every proxy unchanged. A UUID fits.
KEY_PATTERN = r"^[!-~]+$"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        pattern=KEY_PATTERN,
        description=(
            "Optional. Send a new unique value (a UUID, say) with each request you may need to "
            "retry, and the same value with its retries: the request then takes effect once, "
            "and every retry gets the first answer again, with `Idempotent-Replayed: true`. "
            "1-255 visible ASCII characters. Keys are per user and kept for "
            "IDEMPOTENCY_KEY_TTL_SECONDS (24 hours unless configured). The same key with "
            "another body or endpoint is 422; while the first request is still running, 409."
        ),
        examples=["5f0c6f5e-8d3b-4a59-9d2e-7f1c1b0a4e21"],
    ),
]


def reply_response(reply: Reply, *, replayed: bool) -> Response:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return Response(
        reply.body, status_code=reply.status, media_type="application/json", headers=headers
    )


async def answer(
    request: Request,
    *,
    key: str | None,
    user_id: int,
    operation: str,
    body: BaseModel,
    effect: Callable[[ResultHook[T] | None], Awaitable[T]],
    render: Callable[[T], Reply],
) -> Response:
    """Run `effect` and answer with `render(result)`. Without a key that is all; with one, the
    answer is stored with the effect, and a retry gets it back (see services/idempotency.py).

    The idempotency service is made only for a request with a key: as a route dependency it
    would cost every booking, keyed or not."""
    if key is None:
        return reply_response(render(await effect(None)), replayed=False)
    idempotency = await get_idempotency_service(request)
    reply, replayed = await idempotency.run(
        user_id=user_id,
        key=key,
        operation=operation,
        request=body.model_dump(mode="json"),
        effect=effect,
        render=render,
    )
    return reply_response(reply, replayed=replayed)
