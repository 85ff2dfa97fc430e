"""The Idempotency-Key header: holding the key around a request, and the HTTP form of what a
key keeps (see services/idempotency.py for the rules).

A keyed route reads like an unkeyed one:

    async with held_key(request, idempotency_key, user_id=..., operation=..., body=body) as key:
        if is_sent_answer(key):
            return sent_again(key)  # a refusal kept for this key, sent again as it was
        result = await service.book(..., key=key)  # keeps its result, or gives the kept one
    return json_response(201, BookingConfirmed(...), key=key)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Header, Request
from pydantic import BaseModel
from starlette.responses import Response

from booking_service.deps import get_idempotency_service
from booking_service.errors import AppError, IdempotencyKeyInUse
from booking_service.openapi import REPLAYED_HEADER
from booking_service.schemas.errors import error_body
from booking_service.services.idempotency import (
    RESULT,
    HeldKey,
    is_stored_refusal,
    key_digest,
    request_digest,
)

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


def json_text(content: Any) -> str:
    # Starlette's JSONResponse encoding, so a kept answer reads like every other answer.
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    )


def json_response(status: int, model: BaseModel, *, key: HeldKey | None) -> Response:
    """A route's answer; marked as a replay when it is the first answer to this key again."""
    body = json_text(model.model_dump(mode="json", by_alias=True))
    return _response(status, body, replayed=key is not None and key.kept is not None)


def sent_again(key: HeldKey | None) -> Response:
    """The answer the key keeps as it was sent (a refusal), sent again."""
    assert key is not None
    assert key.kept is not None
    return _response(key.kept.status, key.kept.text, replayed=True)


def is_sent_answer(key: HeldKey | None) -> bool:
    """The key keeps an answer as it was sent, to send again (not a result to render)."""
    return key is not None and key.kept is not None and key.kept.status != RESULT


def _response(status: int, body: str, *, replayed: bool) -> Response:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


@asynccontextmanager
async def held_key(
    request: Request, key: str | None, *, user_id: int, operation: str, body: BaseModel
) -> AsyncIterator[HeldKey | None]:
    """Hold the request's Idempotency-Key (None without one) while the block runs. When the
    block fails, a refusal that depends on the request is kept for its retries; any other
    failure frees the key, so a retry runs afresh.

    The idempotency service is made only for a request with a key: as a route dependency it
    would cost every booking, keyed or not."""
    if key is None:
        yield None
        return
    idempotency = await get_idempotency_service(request)
    held = await idempotency.hold(
        user_id=user_id,
        key_digest=key_digest(key),
        request_digest=request_digest(operation, body.model_dump(mode="json")),
    )
    if held.kept is not None:  # a retry: nothing runs, nothing to settle
        yield held
        return
    try:
        yield held
    except IdempotencyKeyInUse:  # taken over by a retry, which answers
        raise
    except AppError as exc:
        if not is_stored_refusal(exc):
            await idempotency.release(held)
            raise
        text = json_text(error_body(exc.message, exc.code, exc.details, exc.fields))
        await idempotency.keep_refusal(held, exc.status_code, text)
        raise
    except Exception:
        await idempotency.release(held)
        raise
