"""What each route publishes about its error answers: `error_responses(...)`, declared by the
routers. (The document as a whole: openapi_document.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from booking_service.errors import (
    NOT_JSON,
    VALIDATION_FAILED,
    AccountGone,
    AppError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotAuthenticated,
    RateLimited,
    ServiceBusy,
)
from booking_service.middleware import CHARSET_MESSAGE, NOT_UTF8_MESSAGE, TOO_LARGE_MESSAGE
from booking_service.schemas.errors import ErrorDetail, ErrorResponse, error_body
from booking_service.services.idempotency import STORED_REFUSALS

Responses = dict[int | str, dict[str, Any]]
InputKind = Literal["body", "path", "query"]


@dataclass(frozen=True)
class ErrorCase:
    """One error answer as a client sees it, shown under `name` among the status's examples."""

    name: str
    status: int
    code: str
    message: str
    details: tuple[ErrorDetail, ...] = ()
    headers: tuple[str, ...] = ()
    fields: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, error: AppError, name: str | None = None) -> ErrorCase:
        return cls(
            name=name or error.code,
            status=error.status_code,
            code=error.code,
            message=error.message,
            details=tuple(error.details or ()),
            headers=tuple(error.headers),
            fields=tuple(error.fields.items()),
        )

    def example(self) -> dict[str, Any]:
        body = error_body(self.message, self.code, self.details, dict(self.fields))
        return {"summary": self.message, "value": body}


STATUS_DESCRIPTIONS = {
    400: "The body could not be decoded: not UTF-8, nested too deeply, or a number too long.",
    401: "Missing, invalid or expired token, or the account is gone.",
    403: "Not allowed.",
    404: "Not found.",
    409: "Conflicts with the current state.",
    410: "It existed but has lapsed.",
    413: "Request body larger than MAX_REQUEST_BODY_BYTES.",
    415: "Content-Type is not application/json, or names a charset other than UTF-8.",
    422: "The request does not match the schema; `details` says where and why.",
    429: "Too many requests; retry after the `Retry-After` seconds.",
    500: "Unexpected error; the message carries a request id to quote.",
    503: "Busy; retry after the `Retry-After` seconds.",
}
HEADER_DESCRIPTIONS = {
    "WWW-Authenticate": "`Bearer`: send a token from `POST /login`.",
    "Retry-After": "Seconds to wait before retrying.",
}
REPLAYED_HEADER = "Idempotent-Replayed"
# On the answers an Idempotency-Key can replay: successes, and the refusals that are stored.
REPLAYED_RESPONSE_HEADERS = {
    REPLAYED_HEADER: {
        "description": (
            "`true` when this is the stored answer to an earlier request with the same "
            "`Idempotency-Key`, sent again; absent on a first answer."
        ),
        "schema": {"type": "string", "enum": ["true"]},
    }
}

MISSING_TOKEN = ErrorCase.of(
    NotAuthenticated("Missing or malformed Authorization header"), name="missing_token"
)
INVALID_TOKEN = ErrorCase.of(NotAuthenticated(code="invalid_token"))
ACCOUNT_GONE = ErrorCase.of(AccountGone(), name="account_gone")
UNREADABLE_BODY = ErrorCase(
    "malformed_body", 400, "malformed_body", "There was an error parsing the body"
)
BODY_TOO_LARGE = ErrorCase(
    "payload_too_large", 413, "payload_too_large", TOO_LARGE_MESSAGE.format(limit=65536)
)
NOT_UTF8_BODY = ErrorCase("not_utf8", 400, "malformed_body", NOT_UTF8_MESSAGE)
NOT_JSON_BODY = ErrorCase("unsupported_media_type", 415, "unsupported_media_type", NOT_JSON)
CHARSET_REFUSED = ErrorCase(
    "charset_refused", 415, "unsupported_media_type", CHARSET_MESSAGE.format(charset="utf-16")
)
RATE_LIMITED = ErrorCase.of(
    RateLimited("Too many requests: the limit is 1 per 1 second", headers={"Retry-After": "1"})
)
BUSY = ErrorCase.of(ServiceBusy())
KEY_IN_USE = ErrorCase.of(IdempotencyKeyInUse())
KEY_REUSED = ErrorCase.of(IdempotencyKeyReused())
INVALID_KEY = ErrorCase(
    "invalid_idempotency_key",
    422,
    "validation_error",
    VALIDATION_FAILED,
    (
        ErrorDetail(
            loc=["header", "Idempotency-Key"],
            msg="String should match pattern '^[!-~]+$'",
            type="string_pattern_mismatch",
        ),
    ),
)
UNEXPECTED = ErrorCase(
    "internal_error",
    500,
    "internal_error",
    "Internal server error (request id 4f2c9a7e1b3d4c5e8f6a7b8c9d0e1f2a)",
)
# One real 422 per kind of input, so the example shown is one the route can actually give.
INVALID_INPUT = {
    "body": ErrorDetail(loc=["body"], msg="Field required", type="missing"),
    "path": ErrorDetail(
        loc=["path", "eventId"],
        msg="Input should be a valid integer, unable to parse string as an integer",
        type="int_parsing",
    ),
    "query": ErrorDetail(
        loc=["query", "limit"],
        msg="Input should be less than or equal to 100",
        type="less_than_equal",
    ),
}


def error_responses(
    *errors: AppError,
    auth: bool,
    validates: InputKind | None = None,
    limited: bool = True,
    uses_database: bool = True,
    idempotent: bool = False,
) -> Responses:
    """The `responses=` entries for a route's error answers, each with the ErrorResponse model.

    `errors` are the domain errors the route's service raises; `auth` adds the bearer guard's
    401s; `validates` adds request validation's 422 (and for a body, the 400 of an unreadable one);
    `idempotent` adds the Idempotency-Key's 409 and 422, and marks the statuses of stored
    refusals as possibly replayed. API routes are rate limited (429) and use the database (503
    when it stays busy); the operations routes say otherwise. Any route can answer 500.
    """
    cases = [ErrorCase.of(error) for error in errors]
    if idempotent:
        cases += [KEY_IN_USE, KEY_REUSED, INVALID_KEY]
    if auth:
        cases += [MISSING_TOKEN, INVALID_TOKEN, ACCOUNT_GONE]
    if validates is not None:
        invalid = INVALID_INPUT[validates]
        cases.append(
            ErrorCase("validation_error", 422, "validation_error", VALIDATION_FAILED, (invalid,))
        )
        if validates == "body":
            cases += [
                UNREADABLE_BODY,
                NOT_UTF8_BODY,
                BODY_TOO_LARGE,
                NOT_JSON_BODY,
                CHARSET_REFUSED,
            ]
    if limited:
        cases.append(RATE_LIMITED)
    if uses_database:
        cases.append(BUSY)
    cases.append(UNEXPECTED)

    by_status: dict[int, list[ErrorCase]] = {}
    for case in cases:
        by_status.setdefault(case.status, []).append(case)
    replayable = {error.status_code for error in STORED_REFUSALS} if idempotent else set()
    return {
        status: _response(status, by_status[status], replayable=status in replayable)
        for status in sorted(by_status)
    }


def _response(status: int, cases: list[ErrorCase], *, replayable: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model": ErrorResponse,
        "description": STATUS_DESCRIPTIONS.get(status, "Error."),
        "content": {
            "application/json": {"examples": {case.name: case.example() for case in cases}}
        },
    }
    headers: dict[str, Any] = {
        name: {"description": HEADER_DESCRIPTIONS[name], "schema": {"type": "string"}}
        for name in sorted({header for case in cases for header in case.headers})
    }
    if replayable:
        headers.update(REPLAYED_RESPONSE_HEADERS)
    if headers:
        entry["headers"] = headers
    return entry
